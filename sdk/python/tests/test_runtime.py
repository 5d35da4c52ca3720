"""The worker runtime against a scripted transport: what its polls ask for."""
import threading
import time
import unittest

from tasker_core import StepHandler
from tasker_core.handler import HandlerRegistry
from tasker_worker.runtime import Worker
from tasker_worker.transport import Transport


class ScriptedTransport(Transport):
    """Hands out one event, then none; records every poll."""

    def __init__(self) -> None:
        self.polls = []
        self.lock = threading.Lock()
        self.handed = False
        self.completed = threading.Event()

    def default_pollers(self, concurrency: int) -> int:
        return 2

    def register(self, worker_id, namespaces, handlers, concurrency):
        return {}

    def poll(self, worker_id, max_events, timeout_ms, completions):
        with self.lock:
            self.polls.append((max_events, timeout_ms, [c["event_id"] for c in completions]))
            if completions:
                self.completed.set()
            if max_events and not self.handed:
                self.handed = True
                return [{"event_id": "e1", "handler_name": "absent", "step_name": "s", "namespace": "ns",
                         "task_uuid": "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d",
                         "step_uuid": "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5e", "attempt": 1, "max_attempts": 3}], []
        if not completions:
            time.sleep(min(timeout_ms, 20) / 1000)
        return [], [{"event_id": c["event_id"], "status": "accepted"} for c in completions]

    def heartbeat(self, worker_id, event_ids=None):
        return {}

    def deregister(self, worker_id):
        return {}

    def close(self) -> None:
        pass


class CompletionWaitTest(unittest.TestCase):
    def run_one(self, wait_ms):
        t = ScriptedTransport()
        w = Worker(t, HandlerRegistry(), ["ns"], concurrency=1, handlers=["absent"], poll_timeout_ms=50,
                   completion_wait_ms=wait_ms)
        w.start()
        try:
            self.assertTrue(t.completed.wait(10), "the step's completion was never sent")
        finally:
            w.stop()
        with t.lock:
            return [p for p in t.polls if p[2] == ["e1"]]

    def test_a_completion_poll_waits_completion_wait_ms(self):
        polls = self.run_one(37)
        self.assertEqual(len(polls), 1, polls)
        self.assertEqual(polls[0][:2], (1, 37), "the completion's poll asks for the next step and waits 37 ms")

    def test_zero_sends_the_completion_without_waiting(self):
        polls = self.run_one(0)
        self.assertEqual(len(polls), 1, polls)
        self.assertEqual(polls[0][1], 0)

    def test_a_negative_wait_is_refused(self):
        with self.assertRaisesRegex(ValueError, "completion_wait_ms -1"):
            Worker(ScriptedTransport(), HandlerRegistry(), ["ns"], handlers=["absent"], completion_wait_ms=-1)


def event(i, handler):
    return {"event_id": f"e{i}", "handler_name": handler, "step_name": f"s{i}", "namespace": "ns",
            "task_uuid": "0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b4c5d",
            "step_uuid": f"0190d2c4-7bd6-7c1f-9d0e-3c8f1a2b{i:04d}", "attempt": 1, "max_attempts": 3}


class BatchTransport(ScriptedTransport):
    """Hands out the events of `batches`, each to the first poll that asks
    for events, as many as it asks for; records the completions' outcomes."""

    def __init__(self, batches, batch=8):
        super().__init__()
        self.batches = [list(b) for b in batches]
        self.batch = batch
        self.done = set()
        self.outcomes = {}
        self.all_done = threading.Event()
        self.total = sum(len(b) for b in batches)

    def default_batch(self) -> int:
        return self.batch

    def poll(self, worker_id, max_events, timeout_ms, completions):
        with self.lock:
            self.polls.append((max_events, timeout_ms, [c["event_id"] for c in completions]))
            self.done.update(c["event_id"] for c in completions)
            self.outcomes.update((c["event_id"], c["outcome"]) for c in completions)
            if len(self.done) == self.total:
                self.all_done.set()
            answers = [{"event_id": c["event_id"], "status": "accepted"} for c in completions]
            if max_events and self.batches and self.batches[0]:
                out, self.batches[0] = self.batches[0][:max_events], self.batches[0][max_events:]
                if not self.batches[0]:
                    self.batches.pop(0)
                return out, answers
        if not completions:
            time.sleep(min(timeout_ms, 20) / 1000)
        return [], answers


class Fast(StepHandler):
    handler_name = "fast"

    def call(self, context):
        return self.success({})


slow_started = threading.Event()


class Slow(StepHandler):
    handler_name = "slow"

    def call(self, context):
        slow_started.set()
        time.sleep(0.05)
        return self.success({})


class VerySlow(StepHandler):
    handler_name = "very_slow"

    def call(self, context):
        slow_started.set()
        time.sleep(0.6)
        return self.success({})


WARM = [[event(i, "fast")] for i in range(4)]  # four timed steps: the thread knows its handlers are fast


class BatchTest(unittest.TestCase):
    def worker(self, t, concurrency, **kw):
        reg = HandlerRegistry()
        reg.register("fast", Fast)
        reg.register("slow", Slow)
        reg.register("very_slow", VerySlow)
        slow_started.clear()
        return Worker(t, reg, ["ns"], concurrency=concurrency, handlers=["fast", "slow", "very_slow"],
                      poll_timeout_ms=50, **kw)

    def run_worker(self, t, concurrency, **kw):
        w = self.worker(t, concurrency, **kw)
        w.start()
        try:
            self.assertTrue(t.all_done.wait(10), f"completions of {sorted(t.done)}, want {t.total} events")
        finally:
            w.stop()

    def asked(self, t):
        with t.lock:
            return [p[0] for p in t.polls if p[0]]

    def test_a_thread_with_fast_handlers_runs_a_batch_in_one_poll(self):
        t = BatchTransport(WARM + [[event(i, "fast") for i in range(4, 9)]], batch=8)
        self.run_worker(t, 1)
        asked = self.asked(t)
        self.assertEqual(asked[:4], [1, 1, 1, 1], "a thread that has timed no handler asks for one event")
        self.assertEqual(asked[4], 8, f"after four fast steps it asks for a batch: {asked}")
        with t.lock:
            carried = [p[2] for p in t.polls if p[2]]
        self.assertIn([f"e{i}" for i in range(4, 9)], carried, "the batch's five completions go in one poll")

    def test_after_a_slow_handler_a_thread_asks_for_one_event(self):
        t = BatchTransport(WARM + [[event(4, "slow")], [event(5, "fast")]], batch=8)
        self.run_worker(t, 1)
        asked = self.asked(t)
        self.assertEqual(asked[4:6], [8, 1], f"after a 50 ms handler the thread asks for one event: {asked}")

    def test_batch_one_asks_for_one(self):
        t = BatchTransport(WARM + [[event(i, "fast") for i in range(4, 7)]], batch=1)
        self.run_worker(t, 1)
        self.assertEqual(set(self.asked(t)), {1})

    def test_a_stopping_worker_hands_back_what_it_has_not_started(self):
        # The stop comes while the batch's first (slow) step runs: it
        # finishes, the two not started go back, their attempts not counted.
        t = BatchTransport(WARM + [[event(4, "slow"), event(5, "fast"), event(6, "fast")]], batch=8)
        w = self.worker(t, 1)
        w.start()
        try:
            self.assertTrue(slow_started.wait(10), "the slow step never started")
        finally:
            w.stop()
        self.assertTrue(t.all_done.wait(10), f"completions {t.outcomes}")
        with t.lock:
            self.assertEqual({k: v for k, v in t.outcomes.items() if k in ("e4", "e5", "e6")},
                             {"e4": "success", "e5": "handed_back", "e6": "handed_back"})

    def test_past_the_stop_deadline_what_has_not_started_goes_back_first(self):
        # The running handler outlasts shutdown_timeout: stop() hands back
        # the batch's step not started, before it deregisters (which would
        # count its attempt), and the thread does not send it again.
        t = BatchTransport(WARM + [[event(4, "very_slow"), event(5, "fast")]], batch=8)
        w = self.worker(t, 1, shutdown_timeout=0.1)
        w.start()
        self.assertTrue(slow_started.wait(10), "the slow step never started")
        w.stop()
        self.assertTrue(t.all_done.wait(10), f"completions {t.outcomes}")
        with t.lock:
            self.assertEqual(t.outcomes.get("e5"), "handed_back")
            sent = [c for p in t.polls for c in p[2] if c == "e5"]
            first_e4 = next(n for n, p in enumerate(t.polls) if "e4" in p[2])
            first_e5 = next(n for n, p in enumerate(t.polls) if "e5" in p[2])
        self.assertEqual(len(sent), 1, "e5 was handed back once")
        self.assertLess(first_e5, first_e4, "e5 went back before the slow step's completion")

    def test_a_batch_below_one_is_refused(self):
        with self.assertRaisesRegex(ValueError, "batch 0"):
            Worker(ScriptedTransport(), HandlerRegistry(), ["ns"], handlers=["absent"], batch=0)


if __name__ == "__main__":
    unittest.main()
