"""ErrorClassifier: a helper that says whether an exception is worth retrying."""
from __future__ import annotations

import builtins
from typing import Any, Dict

_PERMANENT_BUILTINS = (ValueError, TypeError, KeyError, AttributeError, IndexError, AssertionError, SyntaxError,
                       NameError, ImportError, NotImplementedError)
_RETRYABLE_BUILTINS = (ConnectionError, BrokenPipeError, builtins.TimeoutError, BlockingIOError, InterruptedError,
                       OSError)


class ErrorClassifier:
    def __init__(self, *, default_retryable: bool = True) -> None:
        self.default_retryable = default_retryable

    def retryable(self, exc: BaseException) -> bool:
        from . import PermanentError, RetryableError
        if hasattr(exc, "retryable"):
            return bool(getattr(exc, "retryable"))
        if isinstance(exc, PermanentError) or isinstance(exc, _PERMANENT_BUILTINS):
            return False
        if isinstance(exc, RetryableError) or isinstance(exc, _RETRYABLE_BUILTINS):
            return True
        return self.default_retryable

    def permanent(self, exc: BaseException) -> bool:
        return not self.retryable(exc)

    def classify(self, exc: BaseException) -> Dict[str, Any]:
        r = self.retryable(exc)
        return {"error_type": type(exc).__name__, "retryable": r, "classification": "retryable" if r else "permanent"}


_default = ErrorClassifier()


def get_classifier() -> ErrorClassifier:
    return _default


def is_retryable(exc: BaseException) -> bool:
    return _default.retryable(exc)


def is_permanent(exc: BaseException) -> bool:
    return _default.permanent(exc)
