"""The in-process transport: the engine embedded through libtasker (ctypes),
the same handlers and runtime as over HTTP (docs/libtasker.md)."""
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from tasker_core.handler import HandlerRegistry
from tasker_worker.discovery import load_handlers
from tasker_worker.inprocess import InProcessTransport, PushWorker
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



def start_example(prefix: str, push: bool = False):
    """An engine in this process with the example's templates, and a started
    worker of its Python handlers (a PushWorker with push)."""
    work = tempfile.mkdtemp(prefix=prefix)
    transport = InProcessTransport({"database_path": os.path.join(work, "t.db"),
                                    "templates": [os.path.join(EXAMPLES, "templates")],
                                    "complete_timeout_ms": 5000}, lib_path=libtasker())
    registry = HandlerRegistry()
    load_handlers(os.path.join(EXAMPLES, "order_handlers"), registry)
    if push:
        worker = PushWorker(transport, registry, ["py_example"], concurrency=4)
    else:
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
    engine in this process too: polled by the worker's threads, and pushed
    by the engine (PushWorker)."""

    def test_example_in_process(self):
        self.run_example(push=False)

    def test_example_pushed(self):
        self.run_example(push=True)

    def run_example(self, push):
        transport, worker = start_example("inproc-", push)
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


class PushWorkerTest(unittest.TestCase):
    """A PushWorker: the engine calls the handlers on its own threads."""

    def setUp(self):
        work = tempfile.mkdtemp(prefix="inproc-push-")
        tpl = os.path.join(work, "tpl")
        os.makedirs(tpl)
        with open(os.path.join(tpl, "push.yaml"), "w") as f:
            f.write("name: push\nnamespace: push_test\nversion: 1.0.0\nsteps:\n"
                    "  - {name: first, handler: push_test.first, retry: {max_attempts: 1}}\n"
                    "  - {name: second, handler: push_test.second, depends_on: [first]}\n")
        self._db = os.path.join(work, "t.db")
        self.transport = InProcessTransport({"database_path": self._db, "templates": [tpl],
                                             "complete_timeout_ms": 5000}, lib_path=libtasker())
        self.registry = HandlerRegistry()
        self.addCleanup(self.transport.close)

    def create(self, context):
        st, body = self.transport.call("POST", "/v1/tasks", {
            "namespace": "push_test", "name": "push", "version": "1.0.0", "context": context,
            "initiator": "test", "source_system": "inprocess", "reason": "test", "tags": []})
        self.assertIn(st, (200, 201), body)
        return body["task_uuid"]

    def wait(self, task, want):
        deadline = time.time() + 20
        while True:
            body = self.transport.call("GET", f"/v1/tasks/{task}")[1]
            if body.get("status") == want:
                return body
            self.assertLess(time.time(), deadline, f"task {task} is not {want}: {body}")
            time.sleep(0.02)

    def test_results_failures_and_the_stop(self):
        from tasker_core import StepHandler

        engine_threads = []
        release, slow_started = threading.Event(), threading.Event()

        class BadDump:
            def model_dump(self, **_):
                raise RuntimeError("model_dump broke")

        class First(StepHandler):
            handler_name = "push_test.first"

            def call(self, context):
                # A thread Python did not start (threading's dummy for it).
                engine_threads.append(isinstance(threading.current_thread(), threading._DummyThread))
                n = context.get_input("n")
                if n == "nan":
                    return self.success({"x": float("nan")})
                if n == "loop":
                    loop = {}
                    loop["self"] = loop
                    return self.success(loop)
                if n == "dump":
                    return self.success({"x": BadDump()})
                if n == "raise":
                    raise ValueError("no n")
                if n == "slow":
                    slow_started.set()
                    release.wait(10)
                return self.success({"twice": 2 * n if isinstance(n, int) else 0})

        class Second(StepHandler):
            handler_name = "push_test.second"

            def call(self, context):
                return self.success({"plus_one": context.get_dependency_field("first", "twice") + 1})

        self.registry.register("push_test.first", First)
        self.registry.register("push_test.second", Second)
        worker = PushWorker(self.transport, self.registry, ["push_test"], concurrency=2, worker_id="push-test")
        worker.start()
        with self.assertRaises(RuntimeError):
            worker.start()
        ok = [self.create({"n": i}) for i in range(10)]
        for i, t in enumerate(ok):
            self.wait(t, "complete")
            steps = {s["name"]: s for s in self.transport.call("GET", f"/v1/tasks/{t}/workflow_steps")[1]}
            self.assertEqual(steps["second"]["results"], {"plus_one": 2 * i + 1})
        # The engine's threads ran them, not threads of this process.
        self.assertTrue(engine_threads and all(engine_threads), engine_threads)
        # A result that is not JSON (a NaN; one that holds itself; one whose
        # encoding raises something else) fails its step alone, once (the
        # handler ran), not retryable, saying why.
        for n, why in (("nan", "its result is not JSON"), ("loop", "Circular reference"),
                       ("dump", "model_dump broke")):
            with self.assertLogs("tasker_worker", level="WARNING") as logs:
                t = self.create({"n": n})
                self.wait(t, "error")
            self.assertTrue(any(why in r.getMessage() for r in logs.records), (n, logs.output))
            steps = {s["name"]: s for s in self.transport.call("GET", f"/v1/tasks/{t}/workflow_steps")[1]}
            self.assertEqual(steps["first"]["attempts"], 1, (n, steps))
        # A handler that raises fails its step (retryable, as tasker-core;
        # one attempt here), with its message.
        bad = self.create({"n": "raise"})
        self.wait(bad, "error")
        dlq = self.transport.call("GET", f"/v1/dlq/task/{bad}")[1]
        self.assertIn("no n", json.dumps(dlq))
        # The worker is listed while it serves.
        metrics = self.transport.call("GET", "/v1/workers/metrics")[1]
        self.assertIn("push-test", json.dumps(metrics))
        # A stop waits for the step running; its result is stored.
        slow = self.create({"n": "slow"})
        self.assertTrue(slow_started.wait(10), "the slow step did not start")
        threading.Timer(0.3, release.set).start()
        t0 = time.monotonic()
        worker.stop()
        self.assertGreater(time.monotonic() - t0, 0.2, "the stop did not wait for the running step")
        reopened = InProcessTransport({"database_path": self.transport_path(), "templates": [],
                                       "complete_timeout_ms": 5000}, lib_path=libtasker())
        try:
            steps = {s["name"]: s for s in reopened.call("GET", f"/v1/tasks/{slow}/workflow_steps")[1]}
            self.assertEqual(steps["first"]["results"], {"twice": 0})
        finally:
            reopened.close()

    def transport_path(self):
        return self._db

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            PushWorker(self.transport, self.registry, ["push_test"], concurrency=0, handlers=["h"])
        with self.assertRaises(ValueError):
            PushWorker(self.transport, self.registry, [], handlers=["h"])
        with self.assertRaises(ValueError):
            PushWorker(self.transport, self.registry, ["push_test"], shutdown_timeout=0, handlers=["h"])


class PushCommandTest(unittest.TestCase):
    """python3 -m tasker_worker --in-process --push."""

    def run_cli(self, *args, **kw):
        env = dict(os.environ, TASKER_LIB=libtasker(), PYTHONPATH=os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        return subprocess.Popen([sys.executable, "-m", "tasker_worker", *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kw)

    def test_push_needs_in_process(self):
        p = self.run_cli("--server", "http://127.0.0.1:1", "--push", "--namespace", "py_example",
                         "--handlers", os.path.join(EXAMPLES, "order_handlers"))
        _, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("--push needs --in-process", err)

    def test_push_refuses_polling_flags(self):
        p = self.run_cli("--in-process", "--config", "/nonexistent.json", "--push", "--batch", "4",
                         "--namespace", "py_example", "--handlers", os.path.join(EXAMPLES, "order_handlers"))
        _, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("--pollers, --completion-wait-ms and --batch are for polling threads", err)

    def test_serves_until_sigterm(self):
        work = tempfile.mkdtemp(prefix="inproc-cli-")
        cfg = os.path.join(work, "cfg.json")
        with open(cfg, "w") as f:
            json.dump({"database_path": os.path.join(work, "t.db"),
                       "templates": [os.path.join(EXAMPLES, "templates")]}, f)
        p = self.run_cli("--in-process", "--push", "--config", cfg, "--namespace", "py_example",
                         "--handlers", os.path.join(EXAMPLES, "order_handlers"), "--concurrency", "3")
        deadline = time.time() + 30
        line = ""
        while "running" not in line:
            self.assertLess(time.time(), deadline, "the worker did not start")
            line = p.stderr.readline()
            self.assertTrue(line or p.poll() is None, "the worker exited")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("stopped", err)


if __name__ == "__main__":
    unittest.main()
