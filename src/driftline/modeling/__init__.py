"""The scikit-learn pipeline built from the feature types, its predictions, the holdout split, and the metrics.
May import: config (and scikit-learn).
"""
