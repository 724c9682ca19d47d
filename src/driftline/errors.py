"""The exceptions driftline raises on purpose: each message says what is wrong and how to fix it."""

from typing import ClassVar

from driftline.outages import is_outage


class DriftlineError(Exception):
    """Base class: a failure with a message meant for the person running driftline.

    Most are answers, not accidents (a rejected file, a refused transition, a bad config): asking again gives the
    same answer, so they are not `transient`. An error that an outage causes sets `transient = True`.
    """

    transient: ClassVar[bool] = False


class ConfigError(DriftlineError):
    """The config file is missing, unreadable or invalid."""


class DataRejected(DriftlineError):
    """A data file failed to load or to validate; it has been (or must be) quarantined."""

    def __init__(self, path: str, reasons: list[str], quarantined_to: str | None = None):
        self.path = path
        self.reasons = reasons
        self.quarantined_to = quarantined_to
        where = f" (quarantined to {quarantined_to})" if quarantined_to else ""
        super().__init__(f"{path} rejected{where}: " + "; ".join(reasons))


class GateRefused(DriftlineError):
    """A challenger did not pass the evaluation gate; the champion is unchanged (the CLI exits 4)."""


class NeedsAttention(DriftlineError):
    """The fleet inventory flagged models a person must look at: stale, orphaned, failing or breaching (exit 7)."""


class NoChampion(DriftlineError):
    """An operation needs a model behind the `champion` alias and there is none yet."""


class TransitionRefused(DriftlineError):
    """A registry transition governance does not allow: a retired version, no version to roll back to."""


class PathNotAllowed(DriftlineError):
    """A path to read or write lies outside the folders the config allows (storage.allowed_roots); nothing touched."""


class ModelTampered(DriftlineError):
    """A model artifact's bytes differ from the checksum recorded at registration; it is not deserialized."""


class OutputNotWritten(DriftlineError):
    """An output could not be written (the disk is full); the file it would have replaced is left as it was."""


class RegistryUnavailable(DriftlineError):
    """The MLflow tracking server did not answer, or answered with a server error, after the configured retries."""

    transient = True


class InvariantViolated(DriftlineError):
    """`driftline check` found the registry in a state its invariants forbid (the CLI exits 6)."""


def retry_can_help(error: BaseException) -> bool:
    """Whether running the same step again may succeed: yes after an outage (`driftline.outages`: a server down or
    answering 5xx, a dropped connection, a timeout, a locked database), no after one of driftline's answers (a
    rejected file, a bad config, no champion, a tampered model, a refusal, a violated invariant). Any other error is
    a bug: retrying it would only delay its traceback."""
    return error.transient if isinstance(error, DriftlineError) else is_outage(error)
