"""Data files: typed loading, chunked reading, atomic writes, archive, quarantine, landing, paths, prediction log.
May import: config, errors, modeling (the predictions a prediction-log row holds).
"""
