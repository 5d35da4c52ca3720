"""tasker_core's handler API against the reference (docs/workers.md), without a server."""
import unittest
import uuid

import tasker_core
from tasker_core import StepHandler, StepHandlerResult
from tasker_core.batch_processing import Batchable, BatchAggregationScenario
from tasker_core.errors import PermanentError, RetryableError, TaskerError
from tasker_core.handler import HandlerRegistry
from tasker_core.step_handler import DecisionHandler
from tasker_core.step_handler.functional import (BatchConfig, Decision, batch_analyzer, decision_handler, depends_on,
                                                 inputs, step_handler)
from tasker_core.types import ErrorType, FfiStepEvent, StepContext
from tasker_worker.execute import _task_sequence_step, build_context, completion, run_handler


def event(**kw):
    ev = {"event_id": str(uuid.uuid4()), "task_uuid": str(uuid.uuid4()), "step_uuid": str(uuid.uuid4()),
          "step_name": "s", "namespace": "ns", "handler_name": "h", "task_context": {"a": 1, "n": None},
          "dependency_results": {}, "attempt": 1, "max_attempts": 3}
    ev.update(kw)
    return ev


class ContextTest(unittest.TestCase):
    def test_accessors(self):
        ctx = build_context(event(initialization={"k": "v"}, attempt=3, max_attempts=3,
                                  dependency_results={"up": {"result": {"x": {"y": 2}}}, "up2": 5}))
        self.assertEqual(ctx.get_input("a"), 1)
        self.assertEqual(ctx.get_input_or("n", "d"), "d")
        self.assertEqual(ctx.get_config("k"), "v")
        self.assertEqual(ctx.step_config, {"k": "v"})
        self.assertEqual(ctx.step_inputs, {"k": "v"})
        # A result holding its own "result" key is unwrapped once, from the envelope.
        self.assertEqual(ctx.get_dependency_result("up"), {"result": {"x": {"y": 2}}})
        self.assertEqual(ctx.get_dependency_field("up", "result", "x", "y"), 2)
        self.assertIsNone(ctx.get_dependency_field("up", "nope", "y"))
        self.assertEqual(ctx.get_all_dependency_results("up"), [{"result": {"x": {"y": 2}}}, 5])
        self.assertEqual(ctx.retry_count, 2)
        self.assertTrue(ctx.is_retry() and ctx.is_last_retry())
        self.assertIsInstance(ctx.task_uuid, uuid.UUID)
        self.assertFalse(ctx.has_checkpoint())
        self.assertEqual(ctx.checkpoint_items_processed, 0)

    def test_context_is_from_ffi_events(self):
        # build_context builds the event's task_sequence_step only when it
        # is read: the context must be what StepContext.from_ffi_event
        # makes of the whole FfiStepEvent, attribute for attribute.
        for ev in (event(),
                   event(initialization={"k": "v"}, attempt=2, max_attempts=5, correlation_id=str(uuid.uuid4()),
                         parent_correlation_id=str(uuid.uuid4()), dependency_results={"a": {"x": 1}, "b": None},
                         handler_method="go"),
                   event(batch={"cursor": {"batch_id": "1"}, "batch_metadata": {}, "is_no_op": True,
                                "template_step_name": "w"}, checkpoint={"cursor": 9, "items_processed": 3},
                         max_attempts=None, attempt=None)):
            lazy = build_context(ev)
            tss = _task_sequence_step(ev, lazy.step_inputs, lazy.dependency_results)
            full = StepContext.from_ffi_event(
                FfiStepEvent(event_id=ev["event_id"], task_uuid=ev["task_uuid"], step_uuid=ev["step_uuid"],
                             correlation_id=ev.get("correlation_id") or ev["task_uuid"], task_sequence_step=tss,
                             task_correlation_id=ev.get("correlation_id"),
                             parent_correlation_id=ev.get("parent_correlation_id")), ev["handler_name"])
            for attr in ("task_uuid", "step_uuid", "correlation_id", "handler_name", "input_data",
                         "dependency_results", "step_config", "step_inputs", "retry_count", "max_retries",
                         "checkpoint", "checkpoint_cursor", "checkpoint_items_processed", "accumulated_results"):
                self.assertEqual(getattr(lazy, attr), getattr(full, attr), attr)
            self.assertEqual(lazy.event.task_sequence_step, tss)
            for attr in ("event_id", "task_uuid", "step_uuid", "correlation_id", "task_correlation_id",
                         "parent_correlation_id", "trace_id", "span_id"):
                self.assertEqual(getattr(lazy.event, attr), getattr(full.event, attr), attr)
            self.assertIsInstance(lazy.event, FfiStepEvent)
        # The task_sequence_step built when read is tasker-core's shape.
        ev = event(initialization={"k": "v"}, attempt=2, max_attempts=5, dependency_results={"a": {"x": 1}},
                   handler_method="go", checkpoint={"cursor": 9, "items_processed": 3, "at": "t"})
        self.assertEqual(build_context(ev).event.task_sequence_step, {
            "task": {"task": {"task_uuid": ev["task_uuid"], "context": {"a": 1, "n": None}, "correlation_id": None,
                              "parent_correlation_id": None},
                     "namespace_name": "ns", "task_name": None, "task_version": None},
            "workflow_step": {"workflow_step_uuid": ev["step_uuid"], "task_uuid": ev["task_uuid"], "name": "s",
                              "template_step_name": "s", "attempts": 1, "max_attempts": 5, "inputs": {"k": "v"},
                              "checkpoint": {"cursor": 9, "items_processed": 3, "accumulated_results": None,
                                             "timestamp": "t", "history": []}},
            "dependency_results": {"a": {"step_uuid": None, "success": True, "status": "completed",
                                         "result": {"x": 1}, "metadata": {"execution_time_ms": 0,
                                                                          "retryable": False},
                                         "error": None, "orchestration_metadata": None}},
            "step_definition": {"name": "s", "handler": {"callable": "h", "initialization": {"k": "v"},
                                                         "method": "go"}}})
        # The uuids parse when read, and may be set.
        ctx = build_context(event())
        ctx.task_uuid = "not-a-uuid"
        self.assertEqual(ctx.task_uuid, "not-a-uuid")

    def test_batch_inputs_and_checkpoint(self):
        ctx = build_context(event(batch={"cursor": {"batch_id": "002", "start_cursor": 2, "end_cursor": 4,
                                                    "batch_size": 2},
                                         "batch_metadata": {"cursor_field": "id", "failure_strategy": "fail_fast"},
                                         "is_no_op": False, "template_step_name": "w"},
                                  checkpoint={"cursor": 3, "items_processed": 1, "accumulated_results": [1]}))
        self.assertEqual(ctx.checkpoint_cursor, 3)
        self.assertEqual(ctx.accumulated_results, [1])
        b = Batchable().get_batch_context(ctx)
        self.assertEqual((b.batch_id, b.start_cursor, b.end_cursor, b.step_size), ("002", 2, 4, 2))
        self.assertTrue(b.has_checkpoint())
        inputs_ = Batchable().get_batch_worker_inputs(ctx)
        self.assertEqual(inputs_.cursor.batch_id, "002")
        self.assertFalse(inputs_.is_no_op)


class ResultTest(unittest.TestCase):
    def test_results_and_error_types(self):
        self.assertEqual(ErrorType.TIMEOUT, "timeout")
        self.assertTrue(ErrorType.is_typically_retryable("retryable_error"))
        r = StepHandlerResult.failure("m", ErrorType.PERMANENT_ERROR, False)
        self.assertEqual(r.error_type, "permanent_error")
        self.assertTrue(StepHandlerResult(success=True).is_success_result())
        e = PermanentError("x", error_code="E1", retry_after=3, context={"c": 1})
        self.assertEqual(e.metadata, {"error_code": "E1", "retry_after": 3, "c": 1})
        self.assertFalse(e.retryable)
        self.assertTrue(RetryableError("y").retryable)
        self.assertIsNot(tasker_core.TaskerError, TaskerError)  # quirk kept

    def test_completion_shapes(self):
        ev = event()
        self.assertEqual(completion(ev, StepHandlerResult.success({"a": 1})),
                         {"event_id": ev["event_id"], "outcome": "success", "result": {"a": 1}})
        f = completion(ev, StepHandlerResult.failure("no", "validation_error", False,
                                                     {"retry_after": 2, "traceback": "t"}))
        self.assertEqual(f["error"], {"error_type": "validation_error", "message": "no", "retryable": False,
                                      "retry_after_seconds": 2, "metadata": {"retry_after": 2}})
        y = completion(ev, Batchable.checkpoint_yield(StepHandler.__new__(Echo), 5, 3, [1]))
        self.assertEqual(y["outcome"], "checkpoint_yield")
        self.assertEqual(y["checkpoint"], {"cursor": 5, "items_processed": 3, "accumulated_results": [1]})


class Echo(StepHandler, Batchable):
    handler_name = "echo"

    def call(self, context):
        return self.success({"a": context.get_input("a")})


class Raises(StepHandler):
    handler_name = "raises"

    def call(self, context):
        raise PermanentError("class-based")


class Route(DecisionHandler):
    handler_name = "route"

    def call(self, context):
        return self.decision_success(["x"], routing_context={"why": 1})


@step_handler("fn")
@depends_on(up="up")
@inputs("a")
def fn(up, a, context):
    return {"sum": up["v"] + a, "retry": context.retry_count}


@step_handler("fn_bad_param")
@inputs("amount")
def fn_bad_param(_amount):
    return {}


@decision_handler("fn_route")
def fn_route():
    return Decision.skip("nothing", why=2)


@batch_analyzer("fn_plan", worker_template="w")
def fn_plan():
    return BatchConfig(total_items=5, batch_size=2)


class HandlersTest(unittest.TestCase):
    def setUp(self):
        self.reg = HandlerRegistry()
        import sys
        self.reg.discover_module(sys.modules[__name__])

    def run_(self, name, **kw):
        return run_handler(self.reg, event(handler_name=name, **kw))

    def test_class_and_functional(self):
        self.assertEqual(self.run_("echo").result, {"a": 1})
        r = self.run_("fn", dependency_results={"up": {"v": 2}}, attempt=2)
        self.assertEqual(r.result, {"sum": 3, "retry": 1})

    def test_exceptions(self):
        # Quirk kept: a class-based handler's PermanentError is retryable.
        r = self.run_("raises")
        self.assertEqual((r.error_type, r.retryable), ("PermanentError", True))
        # Quirk kept: _amount does not bind to the input "amount": a retryable handler_error.
        r = self.run_("fn_bad_param")
        self.assertEqual((r.is_success, r.error_type, r.retryable), (False, "handler_error", True))
        r = self.run_("missing")
        self.assertEqual((r.error_type, r.retryable, r.error_message),
                         ("handler_not_found", False, "Handler not found: missing"))

    def test_class_lookup(self):
        # A callable that is an import path resolves without registration (tasker-core's class_lookup).
        r = run_handler(HandlerRegistry(), event(handler_name="tests.fixtures.fault_handlers.Echo",
                                                 task_context={"mode": "m"}))
        self.assertEqual(r.result, {"echo": "m", "result": "nested"})
        self.assertIsNone(HandlerRegistry().resolve_class("tests.fixtures.fault_handlers.lowercase"))

    def test_decisions_and_batches(self):
        r = self.run_("route")
        self.assertEqual(r.result, {"decision_point_outcome": {"type": "create_steps", "step_names": ["x"]},
                                    "routing_context": {"why": 1}})
        self.assertEqual(r.metadata["decision_handler"], "route")
        r = self.run_("fn_route")
        self.assertEqual(r.result, {"decision_point_outcome": {"type": "no_branches"}, "reason": "nothing",
                                    "routing_context": {"why": 2}})
        r = self.run_("fn_plan")
        out = r.result["batch_processing_outcome"]
        self.assertEqual(out["worker_count"], 3)
        self.assertEqual(out["cursor_configs"][2], {"batch_id": "003", "start_cursor": 4, "end_cursor": 5,
                                                    "batch_size": 1})

    def test_aggregation(self):
        s = BatchAggregationScenario.detect({"plan": {"result": {"batch_processing_outcome": {"type": "x"}}},
                                             "w_001": {"result": {"items_processed": 2, "items_succeeded": 2}},
                                             "w_002": {"result": {"items_processed": 1, "items_succeeded": 0}}},
                                            "plan", "w_")
        self.assertEqual(s.worker_count, 2)
        agg = Batchable.aggregate_worker_results(list(s.batch_results.values()))
        self.assertEqual((agg["total_processed"], agg["total_succeeded"], agg["batch_count"]), (3, 2, 2))
        with self.assertRaises(ValueError):
            BatchAggregationScenario.detect({}, "plan", "w_")


if __name__ == "__main__":
    unittest.main()
