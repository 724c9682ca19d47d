"""The fleet: many models from a folder of configs: their schedules, inventory, SLAs and report.
May import: config, errors, data, monitoring, governance, registry, serving.
"""
