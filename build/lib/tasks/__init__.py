"""Prefect tasks: each wraps one driftline library call with retries and publishes what a person reads."""
