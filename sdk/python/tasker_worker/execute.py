"""One step: a wire event becomes a StepContext, the handler runs, its
StepHandlerResult becomes a wire completion (docs/workers.md)."""
from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from typing import Any, Dict, Optional

from tasker_core.handler import HandlerRegistry, instantiate
from tasker_core.types import FfiStepEvent, StepContext, StepHandlerResult

log = logging.getLogger("tasker_worker")


def _envelope(result: Any) -> Dict[str, Any]:
    """A dependency result wrapped as tasker-core stores it, so that
    get_dependency_result unwraps it even when it has its own "result" key."""
    return {"step_uuid": None, "success": True, "status": "completed", "result": result,
            "metadata": {"execution_time_ms": 0, "retryable": False}, "error": None,
            "orchestration_metadata": None}


def _checkpoint(cp: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The engine's checkpoint in tasker-core's stored form."""
    if not isinstance(cp, dict):
        return None
    out = {"cursor": cp.get("cursor"), "items_processed": cp.get("items_processed", 0),
           "accumulated_results": cp.get("accumulated_results"), "timestamp": cp.get("at"),
           "history": []}
    return out


class _WireEvent(FfiStepEvent):
    """The FfiStepEvent of a wire event. Its task_sequence_step, which few
    handlers read (the checkpoint accessors, ``context.task_sequence_step``),
    is built when first read, from the same dicts the StepContext holds."""

    def __init__(self, ev: Dict[str, Any], inputs: Dict[str, Any], deps: Dict[str, Any]) -> None:
        self._ev, self._inputs, self._deps, self._tss = ev, inputs, deps, None
        self.event_id = ev["event_id"]
        self.task_uuid = ev["task_uuid"]
        self.step_uuid = ev["step_uuid"]
        self.correlation_id = ev.get("correlation_id") or ev["task_uuid"]
        self.task_correlation_id = ev.get("correlation_id")
        self.parent_correlation_id = ev.get("parent_correlation_id")
        self.trace_id = None
        self.span_id = None

    @property
    def task_sequence_step(self) -> Dict[str, Any]:
        if self._tss is None:
            self._tss = _task_sequence_step(self._ev, self._inputs, self._deps)
        return self._tss

    @task_sequence_step.setter
    def task_sequence_step(self, v: Dict[str, Any]) -> None:
        self._tss = v


def _task_sequence_step(ev: Dict[str, Any], inputs: Dict[str, Any], deps: Dict[str, Any]) -> Dict[str, Any]:
    """The event in tasker-core's TaskSequenceStep shape."""
    init = ev.get("initialization") or {}
    return {
        "task": {"task": {"task_uuid": ev["task_uuid"], "context": ev.get("task_context"),
                          "correlation_id": ev.get("correlation_id"),
                          "parent_correlation_id": ev.get("parent_correlation_id")},
                 "namespace_name": ev.get("namespace"), "task_name": None, "task_version": None},
        "workflow_step": {"workflow_step_uuid": ev["step_uuid"], "task_uuid": ev["task_uuid"],
                          "name": ev.get("step_name"), "template_step_name": ev.get("step_name"),
                          "attempts": int(ev.get("attempt") or 1) - 1, "max_attempts": ev.get("max_attempts") or 3,
                          "inputs": inputs, "checkpoint": _checkpoint(ev.get("checkpoint"))},
        "dependency_results": deps,
        "step_definition": {"name": ev.get("step_name"),
                            "handler": {"callable": ev.get("handler_name"), "initialization": init,
                                        "method": ev.get("handler_method")}},
    }


_EVENTS = object()  # build_context's handler_name when not given


def build_context(ev: Dict[str, Any], handler_name: Any = _EVENTS) -> StepContext:
    """The StepContext of a wire event: what StepContext.from_ffi_event
    makes of tasker-core's FfiStepEvent, without building the event's
    task_sequence_step unless the handler reads it. handler_name is the
    context's (not given: the event's handler_name)."""
    init = ev.get("initialization") or {}
    batch = ev.get("batch")
    inputs: Dict[str, Any] = dict(init) if isinstance(init, dict) else {}
    if isinstance(batch, dict):
        inputs.update({"cursor": batch.get("cursor"), "batch_metadata": batch.get("batch_metadata"),
                       "is_no_op": bool(batch.get("is_no_op")),
                       "__template_step_name": batch.get("template_step_name")})
    deps = {name: _envelope(r) for name, r in (ev.get("dependency_results") or {}).items()}
    event = _WireEvent(ev, inputs, deps)
    # Positional: StepContext's keywords cost as much again as the rest of
    # the call (docs/benchmarks.md, "A leaner Python side of a push call").
    return StepContext(event, event.task_uuid, event.step_uuid, event.correlation_id,
                       ev.get("handler_name", "") if handler_name is _EVENTS else handler_name,
                       ev.get("task_context"), deps, init, inputs, (int(ev.get("attempt") or 1) - 1) or 0,
                       ev.get("max_attempts") or 3)


def run_handler(registry: HandlerRegistry, ev: Dict[str, Any]) -> StepHandlerResult:
    """Runs the event's handler as tasker-core does; never raises."""
    key = ev.get("handler_name") or ev.get("step_name") or "unknown_handler"
    cls = registry.resolve_class(key)
    if cls is None:
        return StepHandlerResult.failure(f"Handler not found: {key}", "handler_not_found", False)
    try:
        handler = instantiate(cls, ev.get("initialization") or {})
    except Exception as exc:  # noqa: BLE001
        return StepHandlerResult.failure(f"Handler not found: {key} ({exc})", "handler_not_found", False)
    ctx = build_context(ev, handler.name)
    try:
        out = handler.call(ctx)
        if out.__class__ is not StepHandlerResult and inspect.iscoroutine(out):
            out = asyncio.run(out)
    except Exception as exc:  # noqa: BLE001 - Quirk kept: always retryable, even PermanentError
        return StepHandlerResult.failure(str(exc), type(exc).__name__, True,
                                         {"traceback": traceback.format_exc()})
    if not isinstance(out, StepHandlerResult):
        # tasker-core fails to submit such a completion and the step stalls
        # until its timeout; here it fails at once, not retryable.
        return StepHandlerResult.failure(
            f"handler {key} returned {type(out).__name__}, not a StepHandlerResult: return self.success(...) or "
            f"self.failure(...)", "invalid_handler_result", False)
    return out


def completion(ev: Dict[str, Any], r: StepHandlerResult) -> Dict[str, Any]:
    """The wire completion of a handler's result."""
    eid = ev["event_id"]
    if r.is_success:
        result = r.result if r.result is not None else {}
        if (r.metadata or {}).get("checkpoint_yield") is True and isinstance(result, dict):
            cp: Dict[str, Any] = {"cursor": result.get("cursor"),
                                  "items_processed": int(result.get("items_processed", 0) or 0)}
            if result.get("accumulated_results") is not None:
                cp["accumulated_results"] = result["accumulated_results"]
            return {"event_id": eid, "outcome": "checkpoint_yield", "checkpoint": cp}
        return {"event_id": eid, "outcome": "success", "result": result}
    meta = dict(r.metadata or {})
    err: Dict[str, Any] = {"error_type": r.error_type or "unknown", "message": r.error_message or "Unknown error",
                           "retryable": bool(r.retryable)}
    ra = meta.get("retry_after", meta.get("retry_after_seconds"))
    if isinstance(ra, (int, float)) and not isinstance(ra, bool) and ra >= 0:
        err["retry_after_seconds"] = ra
    meta.pop("traceback", None)  # kept out of the step's record, as tasker-core drops it
    if meta:
        err["metadata"] = meta
    return {"event_id": eid, "outcome": "failure", "error": err}


def failure(error_type: str, message: str, retryable: bool) -> Dict[str, Any]:
    """A failure completion the worker makes itself (no handler's result),
    without its event_id: the caller adds it where it has one."""
    return {"outcome": "failure", "error": {"error_type": error_type, "message": message, "retryable": retryable}}


def run_event(registry: HandlerRegistry, ev: Dict[str, Any]) -> Dict[str, Any]:
    """The wire completion of one event; never raises: a claimed step
    always produces a result."""
    if not isinstance(ev, dict):
        return {"event_id": None, **failure("worker_error", f"the event is not an object: {type(ev).__name__}", True)}
    try:
        c = completion(ev, run_handler(registry, ev))
    except BaseException as exc:  # noqa: BLE001
        c = {"event_id": ev.get("event_id"), **failure("worker_error", f"worker failed to run the step: {exc}", True)}
    if c["outcome"] == "failure":
        e = c["error"]
        log.warning("step %s (handler %s, attempt %s) failed: %s: %s", ev.get("step_name"), ev.get("handler_name"),
                    ev.get("attempt"), e.get("error_type"), e.get("message"))
    return c
