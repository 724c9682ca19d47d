"""One training run (split, fit, measure, capture the drift reference) and its lineage.
May import: config, errors, modeling, data, validation, evaluation, monitoring.
"""
