"""Tuning errors. Class names are stable: the CLI maps them to exit code 2, a state machine's Catch can name them."""

from autobert.errors import AutobertError


class TuningConfigError(AutobertError):
    """A budget, search space or tuning-job parameter is invalid."""


class TuningError(AutobertError):
    """A tuning study could not produce a result (no trial completed, no study found, training setup broken)."""
