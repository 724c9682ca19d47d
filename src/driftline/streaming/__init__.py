"""Streaming inference on Kafka: micro-batches consumed, checked, scored, produced, logged; dead letters; metrics.
May import: config, errors, modeling, data, validation, monitoring, registry, governance, serving.
"""
