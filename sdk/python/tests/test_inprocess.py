"""The in-process transport: the engine embedded through libtasker (ctypes),
the same handlers and runtime as over HTTP (docs/libtasker.md)."""
import logging
import os
import subprocess
import tempfile
import threading
import time
import unittest

from tasker_core.handler import HandlerRegistry
from tasker_worker.discovery import load_handlers
from tasker_worker.inprocess import InProcessTransport
from tasker_worker.runtime import Worker
from tests.harness import EXAMPLES, ROOT
from tests.test_worker_e2e import ORDER

_LIB = None


def libtasker() -> str:
    """TASKER_LIB, or `go build -buildmode=c-shared` of cmd/libtasker (once)."""
    global _LIB
    if _LIB:
        return _LIB
    if os.environ.get("TASKER_LIB"):
        _LIB = os.environ["TASKER_LIB"]
        return _LIB
    out = os.path.join(tempfile.mkdtemp(prefix="libtasker-"), "libtasker.so")
    subprocess.run(["go", "build", "-buildmode=c-shared", "-o", out, "./cmd/libtasker"], cwd=ROOT, check=True)
    _LIB = out
    return out



def start_example(prefix: str):
    """An engine in this process with the example's templates, and a started
    worker of its Python handlers."""
    work = tempfile.mkdtemp(prefix=prefix)
    transport = InProcessTransport({"database_path": os.path.join(work, "t.db"),
                                    "templates": [os.path.join(EXAMPLES, "templates")],
                                    "complete_timeout_ms": 5000}, lib_path=libtasker())
    registry = HandlerRegistry()
    load_handlers(os.path.join(EXAMPLES, "order_handlers"), registry)
    worker = Worker(transport, registry, ["py_example"], concurrency=4)
    worker.start()
    return transport, worker


def create_order(test: unittest.TestCase, transport):
    """Creates the example's order task; its answer's body."""
    st, body = transport.call("POST", "/v1/tasks", {
        "namespace": "py_example", "name": "order_fulfillment", "version": "1.0.0", "context": ORDER,
        "initiator": "test", "source_system": "inprocess", "reason": "test", "tags": []})
    test.assertIn(st, (200, 201), body)
    return body

class InProcessTest(unittest.TestCase):
    """The example workflow (decision, batch with checkpoint yields,
    convergence) runs with its handlers in this process's threads and the
    engine in this process too."""

    def test_example_in_process(self):
        transport, worker = start_example("inproc-")
        try:
            body = create_order(self, transport)
            task = body["task_uuid"]
            deadline = time.time() + 30
            while True:
                st, body = transport.call("GET", f"/v1/tasks/{task}")
                if body.get("status") in ("complete", "error"):
                    break
                self.assertLess(time.time(), deadline, f"the task did not finish: {body}")
                time.sleep(0.05)
            self.assertEqual(body["status"], "complete", body)
            st, steps = transport.call("GET", f"/v1/tasks/{task}/workflow_steps")
            by_name = {s["name"]: s for s in steps}
            self.assertEqual(by_name["finalize_order"]["results"]["carrier"], "express")
            self.assertAlmostEqual(by_name["finalize_order"]["results"]["total"], 121.0)
            # Bad input through the C ABI is an error value, not a crash.
            with self.assertRaises(Exception):
                transport.call("FETCH", "/v1/tasks")
        finally:
            worker.stop()
        self.assertGreater(worker.completed, 0)


class CountingTransport(InProcessTransport):
    """Counts the polls that wait (timeout_ms > 0) in progress at once."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.lock = threading.Lock()
        self.waiting = self.most = 0

    def poll(self, worker_id, max_events, timeout_ms, completions):
        if timeout_ms <= 0:
            return super().poll(worker_id, max_events, timeout_ms, completions)
        with self.lock:
            self.waiting += 1
            self.most = max(self.most, self.waiting)
        try:
            return super().poll(worker_id, max_events, timeout_ms, completions)
        finally:
            with self.lock:
                self.waiting -= 1


class InProcessPollersTest(unittest.TestCase):
    """With 8 threads and pollers=1, one thread at most waits in the
    engine's long poll, and the workflow runs as with every thread polling."""

    def test_one_long_poll_at_a_time(self):
        work = tempfile.mkdtemp(prefix="inproc-pollers-")
        transport = CountingTransport({"database_path": os.path.join(work, "t.db"),
                                       "templates": [os.path.join(EXAMPLES, "templates")],
                                       "complete_timeout_ms": 5000}, lib_path=libtasker())
        registry = HandlerRegistry()
        load_handlers(os.path.join(EXAMPLES, "order_handlers"), registry)
        worker = Worker(transport, registry, ["py_example"], concurrency=8, pollers=1)
        worker.start()
        try:
            tasks = []
            for i in range(3):
                st, body = transport.call("POST", "/v1/tasks", {
                    "namespace": "py_example", "name": "order_fulfillment", "version": "1.0.0", "context": ORDER,
                    "initiator": "test", "source_system": "inprocess", "reason": "test", "tags": [],
                    "idempotency_key": f"pollers-{i}"})
                self.assertIn(st, (200, 201), body)
                tasks.append(body["task_uuid"])
            deadline = time.time() + 30
            for t in tasks:
                while transport.call("GET", f"/v1/tasks/{t}")[1].get("status") != "complete":
                    self.assertLess(time.time(), deadline, "the tasks did not complete")
                    time.sleep(0.05)
        finally:
            worker.stop()
        self.assertEqual(transport.most, 1, "more than one thread waited in a long poll at once")
        self.assertEqual(transport.default_pollers(8), 2)  # in process, by default
        with self.assertRaises(ValueError):
            Worker(transport, registry, ["py_example"], pollers=0)


class InProcessStopTest(unittest.TestCase):
    """A clean stop of a worker on the in-process transport (steps done,
    threads in their long polls) logs nothing at warning level."""

    def test_clean_stop_logs_no_warning(self):
        transport, worker = start_example("inproc-stop-")
        try:
            body = create_order(self, transport)
            deadline = time.time() + 30
            while transport.call("GET", f"/v1/tasks/{body['task_uuid']}")[1].get("status") != "complete":
                self.assertLess(time.time(), deadline, "the task did not complete")
                time.sleep(0.05)
        except BaseException:
            worker.stop()
            raise
        # Every thread is now in a long poll, some with the completion of
        # their last step in it.
        with self.assertLogs("tasker_worker", level="DEBUG") as logs:
            t0 = time.monotonic()
            worker.stop()
            logging.getLogger("tasker_worker").debug("stopped")  # assertLogs needs one record
        took = time.monotonic() - t0
        noisy = [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]
        self.assertEqual(noisy, [], "a clean stop logged warnings")
        # It does not wait for the long polls (20s) that carried the last completions.
        self.assertLess(took, 10.0)


if __name__ == "__main__":
    unittest.main()
