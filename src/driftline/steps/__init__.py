"""Each stage's work together with the registry: the one library call behind a Prefect task.
May import: config, errors, modeling, data, validation, evaluation, monitoring, backtest, training, registry,
governance, serving.
"""
