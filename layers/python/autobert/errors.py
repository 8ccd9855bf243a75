"""Domain errors. Class names are stable: the state machine's Retry/Catch and the API's error mapping use them."""


class AutobertError(Exception):
    """Base class of every error this package raises on purpose (bad input, bad state)."""


class RequestRefused(AutobertError):
    """A request the caller has to change: ``status`` is the HTTP answer (4xx), the message says why. The API
    handlers answer every one of these the same way (``autobert.api_models.install_error_handlers``)."""

    status = 400

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


class DataError(AutobertError):
    """The dataset source or a dataset file is missing, unreadable or unusable."""


class TrainingConfigError(AutobertError):
    """A training hyperparameter, channel or model path is invalid."""


class ModelLoadError(AutobertError):
    """A model folder is missing or incomplete."""
