"""Domain errors. Class names are stable: the state machine's Retry/Catch and the API's error mapping use them."""


class AutobertError(Exception):
    """Base class of every error this package raises on purpose (bad input, bad state)."""


class DataError(AutobertError):
    """The dataset source or a dataset file is missing, unreadable or unusable."""


class TrainingConfigError(AutobertError):
    """A training hyperparameter, channel or model path is invalid."""


class ModelLoadError(AutobertError):
    """A model folder is missing or incomplete."""
