"""Serving: the online service (alias follower, request batcher, prediction-log buffer, the app) and batch scoring.
May import: config, data, errors, governance.rollout, training.modeling, registry (scoring_steps calls it)."""
