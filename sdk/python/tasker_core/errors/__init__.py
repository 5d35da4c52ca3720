"""Errors a handler raises (``tasker_core.errors``)."""
from __future__ import annotations

from typing import Any, Dict, Optional


class TaskerError(Exception):
    """Base of the handler errors: message, retryable, metadata, error_code, retry_after."""

    retryable: bool = True

    def __init__(self, message: str, *, retryable: Optional[bool] = None, metadata: Optional[Dict[str, Any]] = None,
                 error_code: Optional[str] = None, retry_after: Optional[float] = None,
                 context: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = metadata if metadata is not None else {}
        self.error_code = error_code
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable
        if error_code is not None:
            self.metadata["error_code"] = error_code
        if retry_after is not None:
            self.metadata["retry_after"] = retry_after
        if context:
            self.metadata.update(context)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> Dict[str, Any]:
        return {"error_type": type(self).__name__, "message": self.message, "retryable": self.retryable,
                "metadata": self.metadata}


class FFIError(TaskerError):
    retryable = True


class RetryableError(TaskerError):
    retryable = True


class TimeoutError(RetryableError):  # noqa: A001 - tasker-core's name
    pass


class NetworkError(RetryableError):
    pass


class RateLimitError(RetryableError):
    pass


class ServiceUnavailableError(RetryableError):
    pass


class ResourceContentionError(RetryableError):
    pass


class PermanentError(TaskerError):
    retryable = False


class ValidationError(PermanentError):
    pass


class NotFoundError(PermanentError):
    pass


class AuthenticationError(PermanentError):
    pass


class AuthorizationError(PermanentError):
    pass


class ConfigurationError(PermanentError):
    pass


class BusinessLogicError(PermanentError):
    pass


from .error_classifier import ErrorClassifier, get_classifier, is_permanent, is_retryable  # noqa: E402

__all__ = ["TaskerError", "RetryableError", "PermanentError", "TimeoutError", "NetworkError", "RateLimitError",
           "ServiceUnavailableError", "ResourceContentionError", "ValidationError", "NotFoundError",
           "AuthenticationError", "AuthorizationError", "ConfigurationError", "BusinessLogicError", "FFIError",
           "ErrorClassifier", "get_classifier", "is_retryable", "is_permanent"]
