"""Monitoring: drift statistics and verdicts, data quality, Evidently reports, delayed labels, performance, KPIs.
May import: config, errors, modeling, data, validation, evaluation.
"""
