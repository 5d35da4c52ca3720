"""The Python side of one push call, warm, in a timeit loop: what
PushWorker._run does with one event of the in-process bench (a no-op
step of a linear task: one dependency result), and its parts (indented:
parts of run_event; "before": what an earlier version did instead).

    python3 sdk/python/bench/pushrun.py

docs/benchmarks.md ("Lighter push calls") compares it with the same call
in place (inprocess.py --call-cpu).
"""
import json
import os
import sys
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from tasker_core.handler import HandlerRegistry  # noqa: E402
from tasker_worker.discovery import load_handlers  # noqa: E402
from tasker_core.types import StepContext, StepHandlerResult  # noqa: E402
from tasker_worker.execute import build_context, run_event  # noqa: E402
from tasker_worker.inprocess import PushWorker, _encode, _thread_encoder  # noqa: E402
from tasker_worker.transport import _json_default, compact_decoder  # noqa: E402

# An event as the engine sends it to the bench's Python handlers (457 bytes).
EVENT = {"attempt": 1, "attempt_id": "01a24b64-d83f-77f9-b82a-e8a881c76526",
         "correlation_id": "98831475-c63a-4b29-b4a7-c7e254c6bf72", "dependency_results": {"s1": {}},
         "dispatched_at": "2026-12-06T12:47:09.888073022Z", "event_id": "01a24b64-d840-711c-9537-70a36dd20967",
         "handler_name": "bench_handlers.Noop", "max_attempts": 3, "namespace": "bench", "step_name": "s2",
         "step_uuid": "01a24b64-d83d-7007-8cd7-89e38cd50a93", "task_context": {},
         "task_uuid": "01a24b64-d83c-7f36-a0fb-ab6d5f7fd9ed"}


def main():
    registry = HandlerRegistry()
    load_handlers(os.path.join(HERE, "bench_handlers"), registry)
    worker = PushWorker.__new__(PushWorker)  # _run only: no engine
    worker.registry, worker._stopping = registry, False
    raw = json.dumps([EVENT], separators=(",", ":")).encode()
    decode, encode = compact_decoder(), _thread_encoder()
    c = run_event(registry, EVENT)
    ctx, handler = build_context(EVENT), registry.resolve_class(EVENT["handler_name"])()
    n = 200000
    for name, f in (("json.loads (before)", lambda: json.loads(raw)),
                    ("compact_decoder", lambda: decode(raw.decode())),
                    ("run_event", lambda: run_event(registry, EVENT)),
                    ("  build_context", lambda: build_context(EVENT)),
                    ("  StepContext, keywords (before)", lambda: StepContext(
                        event=ctx.event, task_uuid=EVENT["task_uuid"], step_uuid=EVENT["step_uuid"],
                        correlation_id=EVENT["correlation_id"], handler_name="h", input_data={},
                        dependency_results={}, step_config={}, step_inputs={}, retry_count=0, max_retries=3)),
                    ("  StepContext, positional", lambda: StepContext(
                        ctx.event, EVENT["task_uuid"], EVENT["step_uuid"], EVENT["correlation_id"], "h", {}, {}, {},
                        {}, 0, 3)),
                    ("  handler.call (self.success({}))", lambda: handler.call(ctx)),
                    ("  StepHandlerResult, keywords (before)",
                     lambda: StepHandlerResult(is_success=True, result={}, metadata={})),
                    ("  StepHandlerResult, positional", lambda: StepHandlerResult(True, {}, None, None, None, True, {})),
                    ("json.dumps with arguments (before)",
                     lambda: json.dumps(c, separators=(",", ":"), default=_json_default, allow_nan=False)),
                    ("compact_encoder (before)", lambda: _encode(c)),
                    ("_thread_encoder", lambda: encode(c)),
                    ("PushWorker._run, all of it", lambda: worker._run((decode, encode), raw))):
        print(f"{name:40s} {min(timeit.repeat(f, number=n, repeat=3)) / n * 1e6:6.2f} us")


if __name__ == "__main__":
    main()
