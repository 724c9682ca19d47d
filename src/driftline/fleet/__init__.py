"""The fleet: many models from a folder of configs: their schedules, inventory, SLAs and report.
May import: config, errors, file_lock, data, monitoring, governance, registry, serving.
"""
