"""Data types of tasker-core's Python worker API (``tasker_core.types``).

Plain classes with the attributes, defaults and behaviour of tasker-core's
pydantic models (docs/workers.md, "tasker-core compatibility").
"""
from __future__ import annotations

import enum
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


class ErrorType(str, enum.Enum):
    """Standard error types; members equal their strings."""

    PERMANENT_ERROR = "permanent_error"
    RETRYABLE_ERROR = "retryable_error"
    VALIDATION_ERROR = "validation_error"
    TIMEOUT = "timeout"
    HANDLER_ERROR = "handler_error"

    def __str__(self) -> str:  # str(ErrorType.TIMEOUT) == "timeout"
        return self.value

    @classmethod
    def is_standard(cls, value: str) -> bool:
        return value in {m.value for m in cls}

    @classmethod
    def is_typically_retryable(cls, value: str) -> bool:
        return value in (cls.RETRYABLE_ERROR.value, cls.TIMEOUT.value)


class ResultStatus(str, enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    RETRYABLE_ERROR = "retryable_error"
    PERMANENT_ERROR = "permanent_error"


class DecisionType(str, enum.Enum):
    CREATE_STEPS = "create_steps"
    NO_BRANCHES = "no_branches"


class FailureStrategy(str, enum.Enum):
    CONTINUE_ON_FAILURE = "continue_on_failure"
    FAIL_FAST = "fail_fast"
    ISOLATE = "isolate"


def _enum_value(v: Any) -> Any:
    return v.value if isinstance(v, enum.Enum) else v


class StepHandlerResult:
    """What a handler returns (tasker-core's StepHandlerResult)."""

    def __init__(self, is_success: Optional[bool] = None, result: Optional[Dict[str, Any]] = None,
                 error_message: Optional[str] = None, error_type: Optional[str] = None,
                 error_code: Optional[str] = None, retryable: bool = True,
                 metadata: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        if is_success is None and "success" in kwargs:
            is_success = kwargs.pop("success")
        if kwargs:
            raise TypeError(f"StepHandlerResult got unexpected fields {sorted(kwargs)}")
        if is_success is None:
            raise TypeError("StepHandlerResult needs is_success (or success)")
        self.is_success = bool(is_success)
        self.result = result
        self.error_message = error_message
        self.error_type = error_type.value if isinstance(error_type, enum.Enum) else error_type
        self.error_code = error_code
        self.retryable = retryable
        self.metadata = metadata if metadata is not None else {}

    @classmethod
    def success(cls, result: Dict[str, Any], metadata: Optional[Dict[str, Any]] = None) -> "StepHandlerResult":
        if cls is StepHandlerResult:
            # Positional: matching the keywords is a third of the call's
            # cost (bench/pushrun.py). A subclass may have an __init__ of
            # its own: keywords.
            return cls(True, result, None, None, None, True, metadata or {})
        return cls(is_success=True, result=result, metadata=metadata or {})

    @classmethod
    def failure(cls, message: str, error_type: Any = ErrorType.HANDLER_ERROR, retryable: bool = True,
                metadata: Optional[Dict[str, Any]] = None, error_code: Optional[str] = None) -> "StepHandlerResult":
        return cls(is_success=False, error_message=message, error_type=_enum_value(error_type),
                   retryable=retryable, metadata=metadata or {}, error_code=error_code)

    def is_success_result(self) -> bool:
        return self.is_success

    def is_failure_result(self) -> bool:
        return not self.is_success

    def model_dump(self, by_alias: bool = False, **_: Any) -> Dict[str, Any]:
        key = "success" if by_alias else "is_success"
        return {key: self.is_success, "result": self.result, "error_message": self.error_message,
                "error_type": self.error_type, "error_code": self.error_code,
                "retryable": self.retryable, "metadata": self.metadata}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StepHandlerResult) and self.model_dump() == other.model_dump()

    def __repr__(self) -> str:
        return f"StepHandlerResult({self.model_dump()!r})"


class FfiStepEvent:
    """The raw event a handler's context carries."""

    def __init__(self, event_id: str, task_uuid: str, step_uuid: str, correlation_id: str,
                 task_sequence_step: Dict[str, Any], task_correlation_id: Optional[str] = None,
                 parent_correlation_id: Optional[str] = None, trace_id: Optional[str] = None,
                 span_id: Optional[str] = None) -> None:
        self.event_id = event_id
        self.task_uuid = task_uuid
        self.step_uuid = step_uuid
        self.correlation_id = correlation_id
        self.task_sequence_step = task_sequence_step
        self.task_correlation_id = task_correlation_id
        self.parent_correlation_id = parent_correlation_id
        self.trace_id = trace_id
        self.span_id = span_id


def _unwrap(entry: Any) -> Any:
    if isinstance(entry, dict) and "result" in entry:
        return entry["result"]
    return entry


class _LazyUUID:
    """A StepContext uuid parsed when first read (from the value given to
    the constructor, kept in _unparsed), then stored in the instance, which
    also takes a value set: a non-data descriptor, so that reads after the
    first are plain attribute reads."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        v = _as_uuid(obj._unparsed[self.name])
        obj.__dict__[self.name] = v
        return v


class StepContext:
    """What a handler's ``call`` receives (tasker-core's StepContext)."""

    task_uuid = _LazyUUID()
    step_uuid = _LazyUUID()
    correlation_id = _LazyUUID()

    def __init__(self, event: Any, task_uuid: Any, step_uuid: Any, correlation_id: Any, handler_name: str,
                 input_data: Optional[Dict[str, Any]] = None, dependency_results: Optional[Dict[str, Any]] = None,
                 step_config: Optional[Dict[str, Any]] = None, step_inputs: Optional[Dict[str, Any]] = None,
                 retry_count: int = 0, max_retries: int = 3) -> None:
        self.event = event
        # Parsed into UUIDs when first read (_LazyUUID): a handler that
        # never reads them does not pay for three parses. Set, they are
        # what was set.
        self._unparsed = {"task_uuid": task_uuid, "step_uuid": step_uuid, "correlation_id": correlation_id}
        self.handler_name = handler_name
        self.input_data = input_data if input_data is not None else {}
        self.dependency_results = dependency_results if dependency_results is not None else {}
        self.step_config = step_config if step_config is not None else {}
        self.step_inputs = step_inputs if step_inputs is not None else {}
        self.retry_count = retry_count
        self.max_retries = max_retries

    @classmethod
    def from_ffi_event(cls, event: FfiStepEvent, handler_name: str) -> "StepContext":
        tss = event.task_sequence_step or {}
        task = (tss.get("task") or {}).get("task") or {}
        ws = tss.get("workflow_step") or {}
        sd = tss.get("step_definition") or {}
        init = ((sd.get("handler") or {}).get("initialization")) or {}
        return cls(event=event, task_uuid=event.task_uuid, step_uuid=event.step_uuid,
                   correlation_id=event.correlation_id, handler_name=handler_name,
                   input_data=task.get("context"), dependency_results=tss.get("dependency_results") or {},
                   step_config=init, step_inputs=ws.get("inputs") or {},
                   retry_count=ws.get("attempts", 0) or 0, max_retries=ws.get("max_attempts", 3) or 3)

    # --- inputs and configuration
    def get_input(self, key: str) -> Any:
        return self.input_data.get(key)

    def get_input_or(self, key: str, default: Any = None) -> Any:
        v = self.input_data.get(key)
        return default if v is None else v

    def get_config(self, key: str) -> Any:
        return self.step_config.get(key)

    # --- dependencies
    def get_dependency_result(self, step_name: str) -> Any:
        if step_name not in self.dependency_results:
            return None
        return _unwrap(self.dependency_results[step_name])

    def get_dependency_field(self, step_name: str, *path: str) -> Any:
        v = self.get_dependency_result(step_name)
        for key in path:
            if not isinstance(v, dict):
                return None
            v = v.get(key)
            if v is None:
                return None
        return v

    def get_dependency_result_keys(self) -> List[str]:
        return list(self.dependency_results.keys())

    def get_all_dependency_results(self, prefix: str) -> List[Any]:
        out = []
        for k, v in self.dependency_results.items():
            if k.startswith(prefix):
                u = _unwrap(v)
                if u is not None:
                    out.append(u)
        return out

    # --- retries
    def is_retry(self) -> bool:
        return self.retry_count > 0

    def is_last_retry(self) -> bool:
        return self.retry_count >= self.max_retries - 1

    # --- checkpoints
    @property
    def _workflow_step(self) -> Dict[str, Any]:
        tss = getattr(self.event, "task_sequence_step", None) or {}
        return tss.get("workflow_step") or {}

    @property
    def checkpoint(self) -> Optional[Dict[str, Any]]:
        cp = self._workflow_step.get("checkpoint")
        return cp if isinstance(cp, dict) else None

    @property
    def checkpoint_cursor(self) -> Any:
        cp = self.checkpoint
        return cp.get("cursor") if cp else None

    @property
    def checkpoint_items_processed(self) -> int:
        cp = self.checkpoint
        return cp.get("items_processed", 0) if cp else 0

    @property
    def accumulated_results(self) -> Any:
        cp = self.checkpoint
        return cp.get("accumulated_results") if cp else None

    def has_checkpoint(self) -> bool:
        return self.checkpoint_cursor is not None

    @property
    def task_sequence_step(self) -> Any:
        from .models import TaskSequenceStepWrapper
        return TaskSequenceStepWrapper(getattr(self.event, "task_sequence_step", None) or {})


def _as_uuid(v: Any) -> Any:
    if isinstance(v, _uuid.UUID) or v is None:
        return v
    try:
        return _uuid.UUID(str(v))
    except ValueError:
        return v


# --- decisions

class DecisionPointOutcome:
    def __init__(self, decision_type: Any, next_step_names: Optional[List[str]] = None,
                 dynamic_steps: Optional[List[Any]] = None, reason: Optional[str] = None,
                 routing_context: Optional[Dict[str, Any]] = None) -> None:
        self.decision_type = DecisionType(_enum_value(decision_type))
        self.next_step_names = list(next_step_names or [])
        self.dynamic_steps = dynamic_steps
        self.reason = reason
        self.routing_context = routing_context if routing_context is not None else {}

    @classmethod
    def create_steps(cls, step_names: List[str], dynamic_steps: Optional[List[Any]] = None,
                     routing_context: Optional[Dict[str, Any]] = None) -> "DecisionPointOutcome":
        return cls(DecisionType.CREATE_STEPS, step_names, dynamic_steps, None, routing_context)

    @classmethod
    def no_branches(cls, reason: str, routing_context: Optional[Dict[str, Any]] = None) -> "DecisionPointOutcome":
        return cls(DecisionType.NO_BRANCHES, [], None, reason, routing_context)


# --- batches

class CursorConfig:
    def __init__(self, start_cursor: int, end_cursor: int, step_size: int = 1,
                 metadata: Optional[Dict[str, Any]] = None) -> None:
        self.start_cursor = start_cursor
        self.end_cursor = end_cursor
        self.step_size = step_size
        self.metadata = metadata if metadata is not None else {}


class RustCursorConfig:
    def __init__(self, batch_id: str, start_cursor: Any, end_cursor: Any, batch_size: int, **_: Any) -> None:
        self.batch_id = batch_id
        self.start_cursor = start_cursor
        self.end_cursor = end_cursor
        self.batch_size = batch_size


class BatchMetadata:
    def __init__(self, cursor_field: str, failure_strategy: Any, **_: Any) -> None:
        self.cursor_field = cursor_field
        self.failure_strategy = FailureStrategy(_enum_value(failure_strategy))


class RustBatchWorkerInputs:
    def __init__(self, cursor: Any, batch_metadata: Any, is_no_op: bool, **_: Any) -> None:
        self.cursor = cursor if isinstance(cursor, RustCursorConfig) else RustCursorConfig(**cursor)
        self.batch_metadata = (batch_metadata if isinstance(batch_metadata, BatchMetadata)
                               else BatchMetadata(**batch_metadata))
        self.is_no_op = bool(is_no_op)

    @classmethod
    def model_validate(cls, data: Dict[str, Any]) -> "RustBatchWorkerInputs":
        for k in ("cursor", "batch_metadata", "is_no_op"):
            if k not in data:
                raise ValueError(f"batch worker inputs lack {k!r}")
        return cls(**data)


class BatchAnalyzerOutcome:
    def __init__(self, cursor_configs: Optional[List[CursorConfig]] = None, total_items: Optional[int] = None,
                 batch_metadata: Optional[Dict[str, Any]] = None) -> None:
        self.cursor_configs = list(cursor_configs or [])
        self.total_items = total_items
        self.batch_metadata = batch_metadata if batch_metadata is not None else {}

    @classmethod
    def from_ranges(cls, ranges: List[Any], step_size: int = 1, total_items: Optional[int] = None,
                    batch_metadata: Optional[Dict[str, Any]] = None) -> "BatchAnalyzerOutcome":
        return cls([CursorConfig(s, e, step_size) for s, e in ranges], total_items, batch_metadata or {})


class BatchWorkerContext:
    def __init__(self, batch_id: str, cursor_config: CursorConfig, batch_index: int, total_batches: int,
                 batch_metadata: Optional[Dict[str, Any]] = None, checkpoint: Optional[Dict[str, Any]] = None) -> None:
        self.batch_id = batch_id
        self.cursor_config = cursor_config
        self.batch_index = batch_index
        self.total_batches = total_batches
        self.batch_metadata = batch_metadata if batch_metadata is not None else {}
        self.checkpoint = checkpoint if checkpoint is not None else {}

    @property
    def start_cursor(self) -> Any:
        return self.cursor_config.start_cursor

    @property
    def end_cursor(self) -> Any:
        return self.cursor_config.end_cursor

    @property
    def step_size(self) -> int:
        return self.cursor_config.step_size

    @property
    def checkpoint_cursor(self) -> Any:
        return self.checkpoint.get("cursor")

    @property
    def accumulated_results(self) -> Any:
        return self.checkpoint.get("accumulated_results")

    @property
    def checkpoint_items_processed(self) -> int:
        return int(self.checkpoint.get("items_processed", 0) or 0)

    def has_checkpoint(self) -> bool:
        return self.checkpoint_cursor is not None

    @classmethod
    def from_step_context(cls, context: StepContext) -> Optional["BatchWorkerContext"]:
        checkpoint = context.checkpoint or {}
        cursor = (context.step_inputs or {}).get("cursor")
        if isinstance(cursor, dict):
            # Quirk (tasker-core): step_size is the cursor's batch_size.
            cc = CursorConfig(cursor.get("start_cursor"), cursor.get("end_cursor"), cursor.get("batch_size", 1))
            return cls(str(cursor.get("batch_id", "")), cc, 0, 1,
                       context.step_inputs.get("batch_metadata") or {}, checkpoint)
        legacy = context.step_config.get("batch_context") or context.input_data.get("batch_context")
        if isinstance(legacy, dict):
            cc = CursorConfig(legacy.get("start_cursor", 0), legacy.get("end_cursor", 0), legacy.get("step_size", 1))
            return cls(str(legacy.get("batch_id", "")), cc, legacy.get("batch_index", 0),
                       legacy.get("total_batches", 1), legacy.get("batch_metadata") or {}, checkpoint)
        return None


class BatchWorkerOutcome:
    def __init__(self, items_processed: int = 0, items_succeeded: int = 0, items_failed: int = 0,
                 items_skipped: int = 0, results: Optional[List[Any]] = None, errors: Optional[List[Any]] = None,
                 last_cursor: Any = None, batch_metadata: Optional[Dict[str, Any]] = None) -> None:
        self.items_processed = items_processed
        self.items_succeeded = items_succeeded
        self.items_failed = items_failed
        self.items_skipped = items_skipped
        self.results = list(results or [])
        self.errors = list(errors or [])
        self.last_cursor = last_cursor
        self.batch_metadata = batch_metadata if batch_metadata is not None else {}


@dataclass
class NoBatchesOutcome:
    reason: str = "empty_dataset"
    type: str = "no_batches"


@dataclass
class CreateBatchesOutcome:
    worker_template_name: str
    cursor_configs: List[Dict[str, Any]] = field(default_factory=list)
    total_items: int = 0
    type: str = "create_batches"

    @property
    def worker_count(self) -> int:
        return len(self.cursor_configs)


def no_batches(reason: str = "empty_dataset") -> NoBatchesOutcome:
    return NoBatchesOutcome(reason=reason)


def create_batches(worker_template_name: str, cursor_configs: List[Dict[str, Any]], total_items: int) -> CreateBatchesOutcome:
    return CreateBatchesOutcome(worker_template_name, list(cursor_configs), total_items)


@dataclass
class BatchAggregationResult:
    total_processed: int = 0
    total_succeeded: int = 0
    total_failed: int = 0
    total_skipped: int = 0
    batch_count: int = 0
    success_rate: float = 0.0
    errors: List[Any] = field(default_factory=list)
    error_count: int = 0


def aggregate_batch_results(worker_results: List[Any]) -> BatchAggregationResult:
    from .batch_processing import Batchable
    return BatchAggregationResult(**Batchable.aggregate_worker_results(worker_results))


class StepError:
    def __init__(self, error_type: str, message: str, retryable: bool = True,
                 metadata: Optional[Dict[str, Any]] = None, **_: Any) -> None:
        self.error_type = error_type
        self.message = message
        self.retryable = retryable
        self.metadata = metadata if metadata is not None else {}


class StepExecutionResult:
    def __init__(self, step_uuid: str, task_uuid: str, success: bool, status: str, result: Any = None,
                 error: Optional[StepError] = None, metadata: Optional[Dict[str, Any]] = None,
                 execution_time_ms: int = 0, worker_id: Optional[str] = None,
                 correlation_id: Optional[str] = None, **_: Any) -> None:
        self.step_uuid = step_uuid
        self.task_uuid = task_uuid
        self.success = success
        self.status = status
        self.result = result
        self.error = error
        self.metadata = metadata if metadata is not None else {}
        self.execution_time_ms = execution_time_ms
        self.worker_id = worker_id
        self.correlation_id = correlation_id

