"""The worker runtime against a scripted transport: what its polls ask for."""
import threading
import time
import unittest

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


if __name__ == "__main__":
    unittest.main()
