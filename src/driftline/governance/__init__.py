"""Governance over the registry: shadow/canary rollout, automatic rollback, model cards, invariants, reproduction.
May import: config, errors, modeling, data, validation, evaluation, monitoring, training, registry.
"""
