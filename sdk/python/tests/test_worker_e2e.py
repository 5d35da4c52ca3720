"""End to end: a real `tasker serve` and `python3 -m tasker_worker` processes."""
import os
import tempfile
import time
import unittest

from tests.harness import EXAMPLES, FIXTURES, Server, WorkerProc

ORDER = {"items": [{"sku": "a", "price": 40, "quantity": 2}, {"sku": "b", "price": 10, "quantity": 1},
                   {"sku": "c", "price": 5, "quantity": 4}]}


class ExampleTest(unittest.TestCase):
    """The example's template and handlers (class and functional styles,
    a decision, a batch with checkpoint yields) run to completion."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server([os.path.join(EXAMPLES, "templates", "order_fulfillment.yaml")]).start()
        cls.worker = WorkerProc(cls.server.url, ["py_example"], os.path.join(EXAMPLES, "order_handlers"))
        cls.worker.wait_registered(cls.server)

    @classmethod
    def tearDownClass(cls):
        rc = cls.worker.stop()
        cls.server.stop()
        if rc != 0:
            raise AssertionError(f"worker exited {rc}: {cls.worker.logs()}")

    def test_order_fulfillment_express(self):
        task = self.server.create("py_example", "order_fulfillment", ORDER)
        self.server.wait(task)
        steps = self.server.steps(task)
        self.assertIn("express_shipping", steps)
        self.assertNotIn("standard_shipping", steps)
        final = steps["finalize_order"]["results"]
        self.assertEqual(final["carrier"], "express")
        self.assertAlmostEqual(final["total"], 121.0)
        packing = steps["summarize_packing"]["results"]
        self.assertEqual(packing["packed"], ["a", "b", "c"])
        self.assertEqual(packing["batches"], 2)
        self.assertEqual(steps["pack_items_001"]["results"]["results"], ["a", "b"])
        priced = steps["price_order"]["results"]
        self.assertEqual(priced["subtotal"], 110)
        self.assertEqual(priced["item_count"], 3)

    def test_order_fulfillment_standard_route(self):
        task = self.server.create("py_example", "order_fulfillment",
                                  {"items": [{"sku": "z", "price": 1, "quantity": 1}]})
        self.server.wait(task)
        steps = self.server.steps(task)
        self.assertIn("standard_shipping", steps)
        self.assertNotIn("express_shipping", steps)
        self.assertEqual(steps["finalize_order"]["results"]["carrier"], "ground")

    def test_validation_failure_is_permanent(self):
        task = self.server.create("py_example", "order_fulfillment", {"items": []})
        self.server.wait(task, statuses=("error",))
        st = self.server.steps(task)["validate_order"]
        self.assertEqual(st["attempts"], 1)


class FaultTest(unittest.TestCase):
    """Every failure kind; a worker killed mid-step; the server restarted."""

    def setUp(self):
        self.server = Server([os.path.join(FIXTURES, "outcomes.yaml"), os.path.join(FIXTURES, "slow.yaml")],
                             complete_timeout="2s").start()
        self.log = tempfile.mktemp(prefix="fault-log-")
        self.workers = []

    def tearDown(self):
        for w in self.workers:
            w.stop()
        self.server.stop()

    def worker(self, **env):
        e = {"FAULT_LOG": self.log}
        e.update(env)
        w = WorkerProc(self.server.url, ["py_faults"], os.path.join(FIXTURES, "fault_handlers"), extra_env=e)
        self.workers.append(w)
        w.wait_registered(self.server, worker_count=len([x for x in self.workers if x.proc.poll() is None]))
        return w

    def test_outcomes(self):
        self.worker()
        ok = self.server.create("py_faults", "outcomes", {"mode": "ok"})
        retry = self.server.create("py_faults", "outcomes", {"mode": "retryable"})
        perm = self.server.create("py_faults", "outcomes", {"mode": "permanent"})
        crash = self.server.create("py_faults", "outcomes", {"mode": "class_error"})
        self.server.wait(ok)
        self.assertEqual(self.server.steps(ok)["second"]["results"], {"mode": "ok", "attempt": 1})
        self.server.wait(retry)
        self.assertEqual(self.server.steps(retry)["second"]["results"], {"mode": "retryable", "attempt": 2})
        # PermanentError in a functional handler: not retried.
        self.server.wait(perm, statuses=("error",))
        self.assertEqual(self.server.steps(perm)["second"]["attempts"], 1)
        # Any other exception: retryable, so both attempts are used.
        self.server.wait(crash, statuses=("error",))
        self.assertEqual(self.server.steps(crash)["second"]["attempts"], 2)

    def test_worker_killed_mid_step(self):
        w = self.worker()
        task = self.server.create("py_faults", "slow", {})
        deadline = time.time() + 30
        while time.time() < deadline and not _lines(self.log):
            time.sleep(0.05)
        self.assertEqual(_lines(self.log), ["start 0"])
        w.kill()
        self.worker()  # the retry after the complete timeout (2s) reaches the new worker
        self.server.wait(task)
        st = self.server.steps(task)["slow_step"]
        self.assertEqual(st["results"], {"attempt": 2})
        self.assertEqual(_lines(self.log), ["start 0", "start 1", "done 1"])

    def test_server_restarted_under_a_running_worker(self):
        self.worker()
        first = self.server.create("py_faults", "outcomes", {"mode": "ok"})
        self.server.wait(first)
        self.server.stop()
        time.sleep(0.5)
        self.server.start()  # same database, same port: the worker reconnects and registers again
        second = self.server.create("py_faults", "outcomes", {"mode": "ok"})
        self.server.wait(second, timeout=60)

    def test_sigterm_lets_a_running_step_finish(self):
        w = self.worker(SLOW_SECONDS="1.5")
        task = self.server.create("py_faults", "slow", {})
        deadline = time.time() + 30
        while time.time() < deadline and not _lines(self.log):
            time.sleep(0.05)
        self.assertEqual(w.stop(), 0, w.logs())
        self.server.wait(task)
        self.assertEqual(self.server.steps(task)["slow_step"]["results"], {"attempt": 1})


def _lines(path):
    try:
        with open(path) as f:
            return [ln.strip() for ln in f if ln.strip()]
    except FileNotFoundError:
        return []


if __name__ == "__main__":
    unittest.main()
