"""The evaluation gate (MLflow's validate_evaluation_results), holdout metrics, slices, fairness, importance.
May import: config, errors, modeling.
"""
