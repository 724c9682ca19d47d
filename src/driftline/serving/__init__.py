"""Scoring with the champion: the online service (follower, batcher, log buffer, app) and batch scoring of files.
May import: config, errors, modeling, data, validation, evaluation, monitoring, training, registry, governance.
"""
