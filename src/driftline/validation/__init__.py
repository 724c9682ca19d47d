"""Data validation: expectations from the config and training profile, run by Great Expectations, whole or chunked.
May import: config, errors, data.
"""
