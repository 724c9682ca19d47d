"""Prefect flows: the pipeline diagrams of driftline, one per file."""
