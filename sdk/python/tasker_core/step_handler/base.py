"""StepHandler, the base class of class-style handlers."""
from __future__ import annotations

import abc
from typing import Any, Dict, List, Optional

from ..types import ErrorType, StepContext, StepHandlerResult


class StepHandler(abc.ABC):
    """Subclass, set ``handler_name`` and implement ``call(self, context)``."""

    handler_name: str = ""
    handler_version: str = "1.0.0"

    @abc.abstractmethod
    def call(self, context: StepContext) -> StepHandlerResult:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self.handler_name or type(self).__name__

    @property
    def version(self) -> str:
        return self.handler_version

    @property
    def capabilities(self) -> List[str]:
        return ["process"]

    def config_schema(self) -> Optional[Dict[str, Any]]:
        return None

    def success(self, result: Optional[Dict[str, Any]] = None, metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        return StepHandlerResult.success(result or {}, metadata)

    def failure(self, message: str, error_type: Any = "handler_error", retryable: bool = True,
                metadata: Optional[Dict[str, Any]] = None, error_code: Optional[str] = None) -> StepHandlerResult:
        return StepHandlerResult.failure(message, error_type, retryable, metadata, error_code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r})"


__all__ = ["StepHandler", "ErrorType"]
