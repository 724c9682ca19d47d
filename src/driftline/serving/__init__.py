"""Serving: the online service (alias follower, request batcher, prediction-log buffer, the app) and batch scoring.
May import: config, data, governance.rollout, training.modeling, registry (its types; scoring_steps calls it)."""
