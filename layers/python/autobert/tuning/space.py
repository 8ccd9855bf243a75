"""The hyperparameter search space: one definition, turned into Optuna suggestions (local tuner) and into
SageMaker ``ParameterRanges`` (Automatic Model Tuning), so both tuners search the same thing.

A space is configured as JSON (``AUTOBERT_TUNING_SPACE`` or ``autobert tune --space FILE``), one entry per
``training/train.py`` hyperparameter, named as its command-line option without the dashes::

    {"learning-rate": {"low": 1e-5, "high": 3e-4, "log": true},
     "epochs": {"low": 1, "high": 4},
     "batch-size": {"choices": [8, 16, 32]}}

A range's type (float or int) comes from the training script's own argument type unless ``"type"`` says otherwise;
``"choices"`` makes a categorical parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from autobert.tuning.errors import TuningConfigError

Kind = Literal["float", "int", "categorical"]
Choice = str | int | float | bool


@dataclass(frozen=True, kw_only=True)
class Domain:
    """A hyperparameter's values: a numeric range (``float`` or ``int``, ``low`` to ``high``) or ``choices``."""

    kind: Kind
    low: float | None = None
    high: float | None = None
    choices: tuple[Choice, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Bounds(Domain):
    """What training/train.py accepts for one hyperparameter (mirrors its ``validate_args``), and its default."""

    default: Choice
    low_open: bool = False  # low itself is not allowed
    high_open: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def describe(self) -> str:
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"{left}{self.low}, {self.high if self.high is not None else 'inf'}{right}"


# Tunable train.py hyperparameters. A name outside this table would be ignored by the training script (it skips
# unknown arguments), so searching it would only burn compute: it is refused instead. Epochs is tuned as an int.
TUNABLE: dict[str, Bounds] = {
    "learning-rate": Bounds(kind="float", default=1e-4, low=0.0, high=1.0, low_open=True, high_open=True),
    "batch-size": Bounds(kind="int", default=16, low=1, high=4096),
    "epochs": Bounds(kind="int", default=3, low=0.0, high=100, low_open=True),
    "max-length": Bounds(kind="int", default=128, low=8, high=512),
    "warmup-ratio": Bounds(kind="float", default=0.06, low=0.0, high=1.0, high_open=True),
    "weight-decay": Bounds(kind="float", default=0.01, low=0.0, high=1.0, high_open=True),
    "attention-dropout": Bounds(kind="float", default=0.0, low=0.0, high=1.0, high_open=True),
    "truncation": Bounds(kind="categorical", default="head_tail", choices=("head", "head_tail")),
    "fusion": Bounds(kind="categorical", default=True, choices=(True, False)),
}

# The six: learning rate, batch size, epochs, max length, warm-up, weight decay. Sized for BERT-base on a
# GPU or MiniLM on a CPU; override with AUTOBERT_TUNING_SPACE.
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "learning-rate": {"low": 1e-5, "high": 3e-4, "log": True},
    "batch-size": {"choices": [8, 16, 32]},
    "epochs": {"low": 1, "high": 4},
    "max-length": {"choices": [64, 128, 256]},
    "warmup-ratio": {"low": 0.0, "high": 0.2},
    "weight-decay": {"low": 0.0, "high": 0.1},
}


def format_value(value: Choice) -> str:
    """A hyperparameter value as the training script receives it (SageMaker passes every value as a string)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass(frozen=True, kw_only=True)
class Param(Domain):
    """One searched hyperparameter: its name and range (``log``: sampled on a log scale)."""

    name: str
    log: bool = False

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"choices": list(self.choices)}
        return {"type": self.kind, "low": self.low, "high": self.high, "log": self.log}

    def coerce(self, raw: str | Choice) -> Choice | None:
        """A value (e.g. a saved default string) as this parameter's type, or None if it lies outside the space."""
        if self.kind == "categorical":
            for choice in self.choices:
                if format_value(choice) == format_value(raw) or str(choice) == str(raw):
                    return choice
            return None
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return None
        if self.kind == "int":
            if not number.is_integer():
                return None
            number = int(number)
        return number if self.low <= number <= self.high else None


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...] = field(default_factory=tuple)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | None) -> SearchSpace:
        """Parse and validate a JSON space definition; every problem is a TuningConfigError naming the parameter."""
        if not isinstance(spec, Mapping) or not spec:
            raise TuningConfigError("search space is empty: give at least one hyperparameter range")
        return cls(tuple(_parse_param(name, entry) for name, entry in spec.items()))

    @classmethod
    def default(cls) -> SearchSpace:
        return cls.from_dict(DEFAULT_SPACE)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {p.name: p.to_dict() for p in self.params}

    def check_static(self, static: Mapping[str, str]) -> None:
        both = sorted(set(self.names) & set(static))
        if both:
            raise TuningConfigError(f"hyperparameter(s) {', '.join(both)} both searched and fixed: drop the fixed "
                                    "value or the range")

    # -------------------------------------------------------------------------------------------------- Optuna
    def suggest(self, trial) -> dict[str, str]:
        """Ask an Optuna trial for one point of the space; values come back formatted for the training script."""
        values: dict[str, Choice] = {}
        for p in self.params:
            if p.kind == "categorical":
                values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            elif p.kind == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        return {name: format_value(v) for name, v in values.items()}

    def point(self, values: Mapping[str, str | Choice]) -> dict[str, Choice]:
        """The part of ``values`` that lies inside the space, typed for ``Study.enqueue_trial``."""
        out = {}
        for p in self.params:
            if p.name in values:
                coerced = p.coerce(values[p.name])
                if coerced is not None:
                    out[p.name] = coerced
        return out

    # ----------------------------------------------------------------------------------------------- SageMaker
    def parameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        """``HyperParameterTuningJobConfig.ParameterRanges`` (every bound and value a string, as the API wants)."""
        ranges: dict[str, list[dict[str, Any]]] = {
            "ContinuousParameterRanges": [], "IntegerParameterRanges": [], "CategoricalParameterRanges": []}
        for p in self.params:
            if p.kind == "categorical":
                ranges["CategoricalParameterRanges"].append(
                    {"Name": p.name, "Values": [format_value(c) for c in p.choices]})
                continue
            key = "IntegerParameterRanges" if p.kind == "int" else "ContinuousParameterRanges"
            low = int(p.low) if p.kind == "int" else p.low
            high = int(p.high) if p.kind == "int" else p.high
            ranges[key].append({"Name": p.name, "MinValue": format_value(low), "MaxValue": format_value(high),
                                "ScalingType": "Logarithmic" if p.log else "Linear"})
        return {key: value for key, value in ranges.items() if value}


def _parse_param(name: str, entry: Any) -> Param:
    if name not in TUNABLE:
        raise TuningConfigError(f"{name!r} is not a tunable training hyperparameter (known: {', '.join(TUNABLE)})")
    bounds = TUNABLE[name]
    if not isinstance(entry, Mapping):
        raise TuningConfigError(f"{name}: expected an object with low/high or choices, got {entry!r}")
    unknown = set(entry) - {"type", "low", "high", "log", "choices"}
    if unknown:
        raise TuningConfigError(f"{name}: unknown field(s) {sorted(unknown)}")
    if "choices" in entry:
        return _parse_choices(name, entry["choices"], bounds)
    if bounds.kind == "categorical":
        raise TuningConfigError(f"{name}: give choices (one of {list(bounds.choices)})")
    kind = entry.get("type", bounds.kind)
    if kind not in ("float", "int"):
        raise TuningConfigError(f"{name}: type must be 'float' or 'int', got {kind!r}")
    if "low" not in entry or "high" not in entry:
        raise TuningConfigError(f"{name}: a range needs both low and high")
    low, high = entry["low"], entry["high"]
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise TuningConfigError(f"{name}: bounds must be finite numbers, got {value!r}")
        if kind == "int" and not float(value).is_integer():
            raise TuningConfigError(f"{name}: integer range needs whole-number bounds, got {value!r}")
    if low > high:
        raise TuningConfigError(f"{name}: inverted range: low {low} > high {high}")
    if low == high:
        raise TuningConfigError(f"{name}: empty range (low == high == {low}); fix the value as a static "
                                "hyperparameter instead")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise TuningConfigError(f"{name}: log must be true or false")
    if log and low <= 0:
        raise TuningConfigError(f"{name}: a log-scaled range needs low > 0, got {low}")
    for value in (low, high):
        if not bounds.admits(value):
            raise TuningConfigError(f"{name}: {value} is outside what the training script accepts "
                                    f"{bounds.describe()}")
    return Param(name=name, kind=kind, low=float(low), high=float(high), log=log)


def _parse_choices(name: str, choices: Any, bounds: Bounds) -> Param:
    if not isinstance(choices, list) or not choices:
        raise TuningConfigError(f"{name}: choices must be a non-empty list")
    if len({format_value(c) for c in choices}) != len(choices):
        raise TuningConfigError(f"{name}: duplicate choices {choices}")
    for c in choices:
        if bounds.kind == "categorical":
            if format_value(c) not in {format_value(b) for b in bounds.choices}:
                raise TuningConfigError(f"{name}: choice {c!r} not accepted (one of {list(bounds.choices)})")
            continue
        if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c):
            raise TuningConfigError(f"{name}: choices must be numbers, got {c!r}")
        if bounds.kind == "int" and not float(c).is_integer():
            raise TuningConfigError(f"{name}: choices must be whole numbers, got {c!r}")
        if not bounds.admits(c):
            raise TuningConfigError(f"{name}: choice {c} is outside what the training script accepts "
                                    f"{bounds.describe()}")
    if bounds.kind == "int":
        choices = [int(c) for c in choices]
    return Param(name=name, kind="categorical", choices=tuple(choices))


def validate_budget(trials: Any, timeout_seconds: Any) -> None:
    """A local tuning budget: at least one trial and a positive, finite wall time."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise TuningConfigError(f"--trials must be an integer >= 1, got {trials!r}")
    if (isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int | float)
            or not math.isfinite(timeout_seconds) or timeout_seconds <= 0):
        raise TuningConfigError(f"--timeout must be a number of seconds > 0, got {timeout_seconds!r}")
