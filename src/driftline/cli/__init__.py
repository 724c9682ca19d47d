"""The `driftline` command: parses, runs the flows (imported only inside commands) and shows their outcomes.
May import: config, errors, modeling, data, validation, evaluation, monitoring, backtest, training, registry,
governance, serving, steps, stack, fleet, ab_tests, streaming; flows and tasks (driftline.flows, driftline.tasks) only
inside commands.

The one package of the library that sits above driftline.flows: it imports flows and tasks only inside commands, so
`import driftline` stays free of Prefect. `main` parses; loop, governance, archive and operations hold the commands;
render prints them.
"""
