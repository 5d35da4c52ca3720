"""The in-process transport: the engine embedded through libtasker (ctypes),
the same handlers and runtime as over HTTP (docs/libtasker.md)."""
import logging
import os
import subprocess
import tempfile
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


class InProcessTest(unittest.TestCase):
    """The example workflow (decision, batch with checkpoint yields,
    convergence) runs with its handlers in this process's threads and the
    engine in this process too."""

    def test_example_in_process(self):
        work = tempfile.mkdtemp(prefix="inproc-")
        transport = InProcessTransport({"database_path": os.path.join(work, "t.db"),
                                        "templates": [os.path.join(EXAMPLES, "templates")],
                                        "complete_timeout_ms": 5000}, lib_path=libtasker())
        registry = HandlerRegistry()
        load_handlers(os.path.join(EXAMPLES, "order_handlers"), registry)
        worker = Worker(transport, registry, ["py_example"], concurrency=4)
        worker.start()
        try:
            st, body = transport.call("POST", "/v1/tasks", {
                "namespace": "py_example", "name": "order_fulfillment", "version": "1.0.0", "context": ORDER,
                "initiator": "test", "source_system": "inprocess", "reason": "test", "tags": []})
            self.assertIn(st, (200, 201), body)
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


class InProcessStopTest(unittest.TestCase):
    """A clean stop of a worker on the in-process transport (steps done,
    threads in their long polls) logs nothing at warning level."""

    def test_clean_stop_logs_no_warning(self):
        work = tempfile.mkdtemp(prefix="inproc-stop-")
        transport = InProcessTransport({"database_path": os.path.join(work, "t.db"),
                                        "templates": [os.path.join(EXAMPLES, "templates")],
                                        "complete_timeout_ms": 5000}, lib_path=libtasker())
        registry = HandlerRegistry()
        load_handlers(os.path.join(EXAMPLES, "order_handlers"), registry)
        worker = Worker(transport, registry, ["py_example"], concurrency=4)
        worker.start()
        try:
            st, body = transport.call("POST", "/v1/tasks", {
                "namespace": "py_example", "name": "order_fulfillment", "version": "1.0.0", "context": ORDER,
                "initiator": "test", "source_system": "inprocess", "reason": "test", "tags": []})
            self.assertIn(st, (200, 201), body)
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
