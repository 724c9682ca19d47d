"""The `driftline` command: runs the flows and shows their outcomes.

The one package of the library that sits above flows/: it imports flows and tasks only inside commands, so
`import driftline` stays free of Prefect. `main` parses; loop, governance and operations hold the commands; render
prints them.
"""

from driftline.cli.main import main

__all__ = ["main"]
