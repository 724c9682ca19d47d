"""Backtests: a history in time order, retraining policies as config variants in isolated workspaces, the quality
each served (prequential), and the comparison as a table, JSON, chart and HTML page. The replay itself is a flow.
May import: config, errors, modeling, data.
"""
