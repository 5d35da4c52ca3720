"""The functional style: decorators that turn functions into handlers."""
from __future__ import annotations

import asyncio
import inspect
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

from ..batch_processing import Batchable
from ..errors import PermanentError, RetryableError, TaskerError
from ..types import DecisionPointOutcome, StepContext, StepHandlerResult
from .base import StepHandler
from .mixins import APIMixin, DecisionMixin


@dataclass(frozen=True)
class Decision:
    outcome: DecisionPointOutcome

    @classmethod
    def route(cls, steps: List[str], **routing_context: Any) -> "Decision":
        return cls(DecisionPointOutcome.create_steps(list(steps), routing_context=routing_context))

    @classmethod
    def skip(cls, reason: str, **routing_context: Any) -> "Decision":
        return cls(DecisionPointOutcome.no_branches(reason, routing_context=routing_context))


@dataclass
class BatchConfig:
    total_items: int
    batch_size: int
    metadata: Dict[str, Any] = field(default_factory=dict)


HandlerDecorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class FunctionalHandler:  # protocol: an object with _handler_class
    _handler_class: type


def depends_on(**deps: Any) -> HandlerDecorator:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        d = dict(getattr(fn, "_depends_on", {}))
        models = dict(getattr(fn, "_dep_models", {}))
        for param, spec in deps.items():
            if isinstance(spec, tuple):
                d[param], models[param] = spec[0], spec[1]
            else:
                d[param] = spec
        fn._depends_on = d  # type: ignore[attr-defined]
        fn._dep_models = models  # type: ignore[attr-defined]
        return fn
    return deco


def inputs(*keys: Any) -> HandlerDecorator:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if len(keys) == 1 and isinstance(keys[0], type):
            fn._input_model = keys[0]  # type: ignore[attr-defined]
        else:
            fn._inputs = list(getattr(fn, "_inputs", [])) + list(keys)  # type: ignore[attr-defined]
        return fn
    return deco


def _validate(model: Any, value: Any) -> Any:
    if hasattr(model, "model_validate"):
        return model.model_validate(value)
    return model(**value)


def _model_fields(model: Any) -> List[str]:
    if hasattr(model, "model_fields"):
        return list(model.model_fields)
    if hasattr(model, "__dataclass_fields__"):
        return list(model.__dataclass_fields__)
    return list(getattr(model, "__annotations__", {}))


def _convert(value: Any) -> StepHandlerResult:
    if isinstance(value, StepHandlerResult):
        return value
    if isinstance(value, dict):
        return StepHandlerResult.success(value)
    if hasattr(value, "model_dump"):
        return StepHandlerResult.success(value.model_dump(mode="json"))
    if value is None:
        return StepHandlerResult.success({})
    return StepHandlerResult.success({"result": value})


def _from_exception(exc: BaseException) -> StepHandlerResult:
    if isinstance(exc, PermanentError):
        return StepHandlerResult.failure(str(exc), "permanent_error", False, exc.metadata)
    if isinstance(exc, RetryableError):
        return StepHandlerResult.failure(str(exc), "retryable_error", True, exc.metadata)
    if isinstance(exc, TaskerError):
        return StepHandlerResult.failure(str(exc), "handler_error", exc.retryable, exc.metadata)
    return StepHandlerResult.failure(str(exc), "handler_error", True,
                                     {"exception_type": type(exc).__name__, "traceback": traceback.format_exc()})


def _kwargs(fn: Callable[..., Any], context: StepContext) -> Dict[str, Any]:
    kw: Dict[str, Any] = {}
    models = getattr(fn, "_dep_models", {})
    for param, step in getattr(fn, "_depends_on", {}).items():
        v = context.get_dependency_result(step)
        if param in models and isinstance(v, dict):
            v = _validate(models[param], v)
        kw[param] = v
    for key in getattr(fn, "_inputs", []):
        kw[key] = context.get_input(key)
    model = getattr(fn, "_input_model", None)
    if model is not None:
        kw["inputs"] = model(**{f: context.get_input(f) for f in _model_fields(model)})
    params = inspect.signature(fn).parameters
    if "context" in params:
        kw["context"] = context
    elif "_context" in params:
        kw["_context"] = context
    return kw


def _make(fn: Callable[..., Any], name: str, version: str, bases: tuple,
          extra: Optional[Callable[[Any, StepContext], Dict[str, Any]]],
          post: Callable[[Any, Any], StepHandlerResult]) -> Callable[..., Any]:
    is_async = inspect.iscoroutinefunction(fn)

    def _prepare(self: Any, context: StepContext) -> Dict[str, Any]:
        kw = _kwargs(fn, context)
        if extra is not None:
            kw.update(extra(self, context))
        return kw

    if is_async:
        async def call(self: Any, context: StepContext) -> StepHandlerResult:
            try:
                return post(self, await fn(**_prepare(self, context)))
            except Exception as exc:  # noqa: BLE001 - every exception becomes a failure
                return _from_exception(exc)
    else:
        def call(self: Any, context: StepContext) -> StepHandlerResult:  # type: ignore[misc]
            try:
                return post(self, fn(**_prepare(self, context)))
            except Exception as exc:  # noqa: BLE001
                return _from_exception(exc)

    cls = type(fn.__name__, bases, {"handler_name": name, "handler_version": version, "call": call,
                                    "__doc__": fn.__doc__, "__module__": fn.__module__})
    cls.__qualname__ = fn.__qualname__
    fn._handler_class = cls  # type: ignore[attr-defined]
    return fn


def step_handler(name: str, version: str = "1.0.0") -> HandlerDecorator:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        return _make(fn, name, version, (StepHandler,), None, lambda self, v: _convert(v))
    return deco


def decision_handler(name: str, version: str = "1.0.0") -> HandlerDecorator:
    def post(self: Any, v: Any) -> StepHandlerResult:
        if isinstance(v, Decision):
            o = v.outcome
            if o.decision_type.value == "create_steps":
                return self.decision_success(o.next_step_names, routing_context=o.routing_context)
            return self.skip_branches(o.reason or "No branches", routing_context=o.routing_context)
        return _convert(v)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        return _make(fn, name, version, (DecisionMixin, StepHandler), None, post)
    return deco


def batch_analyzer(name: str, worker_template: str, version: str = "1.0.0") -> HandlerDecorator:
    def post(self: Any, v: Any) -> StepHandlerResult:
        if isinstance(v, BatchConfig):
            if v.total_items == 0:
                return self.no_batches_outcome(reason=v.metadata.get("reason", "empty_dataset"), metadata=v.metadata)
            outcome = self.create_batch_outcome(v.total_items, v.batch_size, batch_metadata=v.metadata or {})
            return self.batch_analyzer_success(outcome, worker_template_name=worker_template)
        return _convert(v)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        return _make(fn, name, version, (Batchable, StepHandler), None, post)
    return deco


def batch_worker(name: str, version: str = "1.0.0") -> HandlerDecorator:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        return _make(fn, name, version, (Batchable, StepHandler),
                     lambda self, ctx: {"batch_context": self.get_batch_context(ctx)}, lambda self, v: _convert(v))
    return deco


def api_handler(name: str, base_url: str, version: str = "1.0.0", timeout: float = 30.0,
                default_headers: Optional[Dict[str, str]] = None) -> HandlerDecorator:
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _make(fn, name, version, (APIMixin, StepHandler), lambda self, ctx: {"api": self},
              lambda self, v: _convert(v))
        cls = fn._handler_class  # type: ignore[attr-defined]
        cls.base_url, cls.default_timeout, cls.default_headers = base_url, timeout, dict(default_headers or {})
        return fn
    return deco


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


__all__ = ["step_handler", "depends_on", "inputs", "decision_handler", "Decision", "batch_analyzer", "batch_worker",
           "BatchConfig", "api_handler", "FunctionalHandler", "HandlerDecorator", "Union"]
