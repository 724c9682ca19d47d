"""driftline: a governed continuous-training loop for tabular models (library layer, no Prefect)."""

__version__ = "0.1.0"
