"""Batchable: the helpers of batch analyzers, batch workers and aggregators."""
from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from .types import (BatchAnalyzerOutcome, BatchWorkerContext, BatchWorkerOutcome, CursorConfig,
                    RustBatchWorkerInputs, StepContext, StepHandlerResult)


class BatchWorkerConfig:
    def __init__(self, batch_id: str, cursor_start: int, cursor_end: int, row_count: int, worker_index: int,
                 total_workers: int) -> None:
        self.batch_id = batch_id
        self.cursor_start = cursor_start
        self.cursor_end = cursor_end
        self.row_count = row_count
        self.worker_index = worker_index
        self.total_workers = total_workers

    def to_dict(self) -> Dict[str, Any]:
        return dict(vars(self))


class BatchAggregationScenario:
    def __init__(self, is_no_batches: bool, batchable_result: Any, batch_results: Dict[str, Any],
                 worker_count: int) -> None:
        self.is_no_batches = is_no_batches
        self.batchable_result = batchable_result
        self.batch_results = batch_results
        self.worker_count = worker_count

    @classmethod
    def no_batches(cls, batchable_result: Any = None) -> "BatchAggregationScenario":
        return cls(True, batchable_result, {}, 0)

    @classmethod
    def detect(cls, dependency_results: Dict[str, Any], batchable_step_name: str,
               batch_worker_prefix: str) -> "BatchAggregationScenario":
        if batchable_step_name not in dependency_results:
            raise ValueError(f"Missing batchable step dependency: {batchable_step_name}")
        entry = dependency_results[batchable_step_name]
        batchable = entry["result"] if isinstance(entry, dict) and "result" in entry else entry
        outcome = (batchable or {}).get("batch_processing_outcome") if isinstance(batchable, dict) else None
        if isinstance(outcome, dict) and outcome.get("type") == "no_batches":
            return cls.no_batches(batchable)
        results: Dict[str, Any] = {}
        for k, v in dependency_results.items():
            if k.startswith(batch_worker_prefix):
                u = v["result"] if isinstance(v, dict) and "result" in v else v
                results[k] = u if isinstance(u, dict) else {}
        if not results:
            raise ValueError(f"No batch worker results found with prefix: {batch_worker_prefix}")
        return cls(False, batchable, results, len(results))


class Batchable:
    # --- analyzers
    def create_cursor_config(self, start: int, end: int, step_size: int = 1,
                             metadata: Optional[Dict[str, Any]] = None) -> CursorConfig:
        return CursorConfig(start, end, step_size, metadata or {})

    def create_cursor_ranges(self, total_items: int, batch_size: int, step_size: int = 1,
                             max_batches: Optional[int] = None) -> List[Tuple[int, int]]:
        if total_items == 0:
            return []
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        if max_batches is not None and max_batches > 0 and math.ceil(total_items / batch_size) > max_batches:
            batch_size = math.ceil(total_items / max_batches)
        return [(s, min(s + batch_size, total_items)) for s in range(0, total_items, batch_size)]

    def create_cursor_configs(self, total_items: int, worker_count: int) -> List[BatchWorkerConfig]:
        if worker_count <= 0:
            raise ValueError("worker_count must be positive")
        if total_items == 0:
            return []
        per = math.ceil(total_items / worker_count)
        out = []
        for i in range(worker_count):
            start, end = i * per, min((i + 1) * per, total_items)
            if end <= start:
                continue
            out.append(BatchWorkerConfig(f"{len(out) + 1:03d}", start, end, end - start, i, worker_count))
        return out

    def create_batch_outcome(self, total_items: int, batch_size: int, step_size: int = 1,
                             batch_metadata: Optional[Dict[str, Any]] = None) -> BatchAnalyzerOutcome:
        return BatchAnalyzerOutcome.from_ranges(self.create_cursor_ranges(total_items, batch_size, step_size),
                                                step_size, total_items, batch_metadata or {})

    def create_batch_outcome_from_ranges(self, ranges: List[Tuple[int, int]], step_size: int = 1,
                                         total_items: Optional[int] = None,
                                         batch_metadata: Optional[Dict[str, Any]] = None) -> BatchAnalyzerOutcome:
        return BatchAnalyzerOutcome.from_ranges(ranges, step_size, total_items, batch_metadata or {})

    def batch_analyzer_success(self, outcome: Optional[BatchAnalyzerOutcome] = None,
                               metadata: Optional[Dict[str, Any]] = None, worker_template_name: str = "batch_worker",
                               cursor_configs: Optional[List[Any]] = None, total_items: Optional[int] = None,
                               batch_metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        if cursor_configs is not None:
            configs, total, bmeta = cursor_configs, total_items or 0, batch_metadata or {}
        elif outcome is not None:
            configs, total, bmeta = outcome.cursor_configs, outcome.total_items, outcome.batch_metadata
        else:
            return self.no_batches_outcome(reason="no_cursor_configs_provided")
        if not configs:
            return self.no_batches_outcome(reason=bmeta.get("reason", "empty_dataset"), metadata=bmeta)
        wire = [{"batch_id": f"{i + 1:03d}", "start_cursor": c.start_cursor, "end_cursor": c.end_cursor,
                 "batch_size": c.end_cursor - c.start_cursor} for i, c in enumerate(configs)]
        result: Dict[str, Any] = {"batch_processing_outcome": {"type": "create_batches",
                                                               "worker_template_name": worker_template_name,
                                                               "worker_count": len(wire), "cursor_configs": wire,
                                                               "total_items": total},
                                  "worker_count": len(wire), "total_items": total}
        if bmeta:
            result["batch_metadata"] = bmeta
        meta = metadata if metadata is not None else {}
        meta["batch_analyzer"] = True
        return self.success(result, meta)  # type: ignore[attr-defined]

    def no_batches_outcome(self, reason: str, metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        result: Dict[str, Any] = {"batch_processing_outcome": {"type": "no_batches"}, "reason": reason}
        result.update(metadata or {})
        return self.success(result, {"batch_analyzer": True, "no_batches": True})  # type: ignore[attr-defined]

    # --- workers
    def get_batch_worker_inputs(self, context: StepContext) -> Optional[RustBatchWorkerInputs]:
        if not context.step_inputs:
            return None
        try:
            return RustBatchWorkerInputs.model_validate(context.step_inputs)
        except (ValueError, TypeError, KeyError):
            return None

    def handle_no_op_worker(self, context: StepContext) -> Optional[StepHandlerResult]:
        inputs = self.get_batch_worker_inputs(context)
        if inputs is None or not inputs.is_no_op:
            return None
        return self.success({"batch_id": inputs.cursor.batch_id, "no_op": True, "processed_count": 0,  # type: ignore[attr-defined]
                             "message": "No batches to process",
                             "processed_at": datetime.now(timezone.utc).isoformat()})

    def get_batch_context(self, context: StepContext) -> Optional[BatchWorkerContext]:
        return BatchWorkerContext.from_step_context(context)

    def create_batch_context(self, cursor_config: CursorConfig, batch_index: int, total_batches: int,
                             batch_metadata: Optional[Dict[str, Any]] = None) -> BatchWorkerContext:
        return BatchWorkerContext(str(uuid.uuid4()), cursor_config, batch_index, total_batches, batch_metadata or {})

    def create_worker_outcome(self, items_processed: int, items_succeeded: int = 0, items_failed: int = 0,
                              items_skipped: int = 0, results: Optional[List[Any]] = None,
                              errors: Optional[List[Any]] = None, last_cursor: Any = None,
                              batch_metadata: Optional[Dict[str, Any]] = None) -> BatchWorkerOutcome:
        return BatchWorkerOutcome(items_processed, items_succeeded or items_processed, items_failed, items_skipped,
                                  results, errors, last_cursor, batch_metadata)

    def batch_worker_success(self, outcome: Optional[BatchWorkerOutcome] = None,
                             metadata: Optional[Dict[str, Any]] = None, items_processed: Optional[int] = None,
                             items_succeeded: Optional[int] = None, items_failed: int = 0, items_skipped: int = 0,
                             results: Optional[List[Any]] = None, errors: Optional[List[Any]] = None,
                             last_cursor: Any = None, batch_metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        if items_processed is not None:
            o = BatchWorkerOutcome(items_processed, items_processed if items_succeeded is None else items_succeeded,
                                   items_failed, items_skipped, results, errors, last_cursor, batch_metadata)
        elif outcome is not None:
            o = outcome
        else:
            return self.failure("batch_worker_success requires either outcome or items_processed",  # type: ignore[attr-defined]
                                "invalid_args", False)
        result: Dict[str, Any] = {"items_processed": o.items_processed, "items_succeeded": o.items_succeeded,
                                  "items_failed": o.items_failed, "items_skipped": o.items_skipped,
                                  "last_cursor": o.last_cursor, "batch_metadata": o.batch_metadata}
        if o.results:
            result["results"] = o.results
        if o.errors:
            result["errors"] = o.errors
        meta = metadata if metadata is not None else {}
        meta["batch_worker"] = True
        return self.success(result, meta)  # type: ignore[attr-defined]

    def batch_worker_partial_failure(self, outcome: BatchWorkerOutcome, message: Optional[str] = None,
                                     metadata: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        meta = metadata if metadata is not None else {}
        meta["had_failures"] = True
        r = self.batch_worker_success(outcome, meta)
        r.result["partial_failure"] = True
        if message:
            r.result["partial_failure_message"] = message
        return r

    def checkpoint_yield(self, cursor: Any, items_processed: int, accumulated_results: Any = None) -> StepHandlerResult:
        result: Dict[str, Any] = {"type": "checkpoint_yield", "cursor": cursor, "items_processed": items_processed}
        if accumulated_results is not None:
            result["accumulated_results"] = accumulated_results
        return self.success(result, {"checkpoint_yield": True, "batch_worker": True})  # type: ignore[attr-defined]

    # --- aggregation
    def detect_aggregation_scenario(self, dependency_results: Dict[str, Any], batchable_step_name: str,
                                    batch_worker_prefix: str) -> BatchAggregationScenario:
        return BatchAggregationScenario.detect(dependency_results, batchable_step_name, batch_worker_prefix)

    def no_batches_aggregation_result(self, zero_metrics: Optional[Dict[str, Any]] = None) -> StepHandlerResult:
        r: Dict[str, Any] = {"worker_count": 0, "scenario": "no_batches"}
        r.update(zero_metrics or {})
        return self.success(r)  # type: ignore[attr-defined]

    def aggregate_batch_worker_results(self, scenario: BatchAggregationScenario,
                                       zero_metrics: Optional[Dict[str, Any]] = None,
                                       aggregation_fn: Optional[Callable[[Dict[str, Any]], Dict[str, Any]]] = None) -> StepHandlerResult:
        if scenario.is_no_batches:
            return self.no_batches_aggregation_result(zero_metrics)
        agg = aggregation_fn(scenario.batch_results) if aggregation_fn else {"batch_results": scenario.batch_results}
        r = dict(agg)
        r["worker_count"] = scenario.worker_count
        r["scenario"] = "with_batches"
        return self.success(r)  # type: ignore[attr-defined]

    @staticmethod
    def aggregate_worker_results(worker_results: List[Any]) -> Dict[str, Any]:
        rows = [r for r in worker_results if r is not None]
        tp = sum(int(r.get("items_processed", 0) or 0) for r in rows)
        ts = sum(int(r.get("items_succeeded", 0) or 0) for r in rows)
        tf = sum(int(r.get("items_failed", 0) or 0) for r in rows)
        tk = sum(int(r.get("items_skipped", 0) or 0) for r in rows)
        errs: List[Any] = []
        for r in rows:
            errs.extend(r.get("errors") or [])
        return {"total_processed": tp, "total_succeeded": ts, "total_failed": tf, "total_skipped": tk,
                "batch_count": len(worker_results), "success_rate": (ts / tp) if tp else 0.0,
                "errors": errs[:100], "error_count": len(errs)}


__all__ = ["Batchable", "BatchAggregationScenario", "BatchWorkerConfig"]
