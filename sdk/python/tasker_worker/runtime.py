"""The worker runtime: concurrency threads, each polling for one step at a
time (or a batch, for fast handlers) and sending its completions with its
next poll, and a heartbeat."""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Set

from tasker_core.handler import HandlerRegistry

from .execute import run_event
from .transport import NotRegistered, Transport, TransportError

log = logging.getLogger("tasker_worker")


class Backoff:
    """Exponential backoff with jitter, from first to cap seconds."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first, self.cap, self.n = first, cap, 0

    def next(self) -> float:
        d = min(self.cap, self.first * (2 ** self.n))
        self.n += 1
        return d * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self.n = 0


def _hand_back(event_id: str) -> Dict[str, Any]:
    """The completion that gives back an event the worker will not run."""
    return {"event_id": event_id, "outcome": "handed_back",
            "error": {"message": "the worker is stopping; it had not started the step"}}


def served_handlers(registry: HandlerRegistry, namespaces: List[str], concurrency: int,
                    handlers: Optional[List[str]]) -> List[str]:
    """Checks a worker's arguments; the handler names it serves (handlers,
    or every one of the registry)."""
    if concurrency < 1:
        raise ValueError(f"concurrency {concurrency}: give the steps run at once, at least 1")
    if not namespaces:
        raise ValueError("no namespace: give the namespaces whose steps this worker runs")
    names = list(handlers if handlers is not None else registry.list_handlers())
    if not names:
        raise ValueError("no handler: the handler modules define no StepHandler with a handler_name "
                         "and no decorated function")
    return names


class _Speed:
    """A thread's recent handler times (a moving average): fast once it has
    timed a few handlers and while the average stays under the threshold.
    A thread that has timed none is not fast: it takes one event at a time
    until it knows what its handlers cost."""

    WARMUP = 4

    def __init__(self, threshold: float) -> None:
        self.threshold, self.avg, self.n = threshold, 0.0, 0

    def add(self, seconds: float) -> None:
        self.n += 1
        self.avg = seconds if self.n == 1 else self.avg + (seconds - self.avg) / 4

    def fast(self) -> bool:
        return self.n >= self.WARMUP and self.avg < self.threshold


class Worker:
    """Pulls the steps of namespaces whose handlers the registry has, and runs them.

    concurrency bounds the steps run at once (one thread each). With
    batch 1 the worker never holds an event it has no thread for; a thread
    whose handlers are fast holds up to batch events, run in turn (see
    __init__), so the events held are at most concurrency × batch.
    """

    def __init__(self, transport: Transport, registry: HandlerRegistry, namespaces: List[str],
                 concurrency: int = 8, worker_id: Optional[str] = None, handlers: Optional[List[str]] = None,
                 poll_timeout_ms: int = 20000, shutdown_timeout: float = 30.0,
                 pollers: Optional[int] = None, completion_wait_ms: int = 20,
                 batch: Optional[int] = None, batch_fast_ms: float = 1.0) -> None:
        self.handlers = served_handlers(registry, namespaces, concurrency, handlers)
        self.transport = transport
        self.registry = registry
        self.namespaces = list(namespaces)
        self.concurrency = concurrency
        if pollers is None:
            pollers = transport.default_pollers(concurrency)
        if pollers < 1:
            raise ValueError(f"pollers {pollers}: give the threads that may wait in a long poll at once, at least 1")
        # Idle threads beyond this wait in Python, not in the engine
        # (Transport.default_pollers).
        self._gate = threading.BoundedSemaphore(min(pollers, concurrency))
        # A thread that has timed four handlers and whose last ones ran
        # under batch_fast_ms (a moving average) asks for up to `batch`
        # events in a poll and runs them in turn, their completions going
        # together with its next poll: for fast handlers, one call of the
        # transport and no hand-off between threads per batch instead of
        # per step. The price: a handler that turns slow holds up the rest
        # of its batch (at most batch - 1 steps) for as long as it runs;
        # its thread then asks for one event at a time until its handlers
        # are fast again. A thread that sees the stop before it starts the
        # next event of its batch hands the rest back (outcome
        # handed_back: queued again, the attempt not counted; the server
        # then gives this worker nothing more), and so does stop() at its
        # deadline.
        if batch is None:
            batch = transport.default_batch()
        if batch < 1:
            raise ValueError(f"batch {batch}: give the events a thread may take at once, at least 1")
        if batch_fast_ms < 0:
            raise ValueError(f"batch_fast_ms {batch_fast_ms}: give 0 or more milliseconds")
        self.batch = batch
        self._batch_fast = batch_fast_ms / 1000.0
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.poll_timeout_ms = poll_timeout_ms
        if completion_wait_ms < 0:
            raise ValueError(f"completion_wait_ms {completion_wait_ms}: give 0 or more milliseconds")
        # How long a poll carrying completions waits for the next event: the
        # successor of a step just completed is dispatched a moment later,
        # and a poll that waits for it saves the long poll that would
        # follow (one request a step in a chain instead of two). Stop waits
        # at most this long for such a poll. It takes a turn of the
        # pollers' (if one is free; else it does not wait).
        self.completion_wait_ms = completion_wait_ms
        self.shutdown_timeout = shutdown_timeout
        self._stop_deadline = float("inf")
        self._held: Dict[str, float] = {}
        self._started: Set[str] = set()  # held events whose handler has begun
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self._gone = threading.Event()  # stop() has deregistered: poll errors are expected
        self._registered = threading.Event()
        self._reg_lock = threading.Lock()
        self._complete_timeout = 300.0
        self.completed = 0

    # --- registration
    def _register(self) -> None:
        with self._reg_lock:
            if self._registered.is_set():
                return
            b = Backoff()
            while True:
                try:
                    info = self.transport.register(self.worker_id, self.namespaces, self.handlers, self.concurrency)
                    self._complete_timeout = info.get("complete_timeout_ms", 300000) / 1000.0
                    self.poll_timeout_ms = min(self.poll_timeout_ms, info.get("max_poll_timeout_ms", 30000))
                    self._registered.set()
                    log.info("registered worker %s: namespaces %s, handlers %s", self.worker_id, self.namespaces,
                             self.handlers)
                    return
                except TransportError as exc:
                    if self._stop.is_set():
                        raise
                    d = b.next()
                    log.warning("cannot register with the server (%s); again in %.1fs", exc, d)
                    time.sleep(d)

    def _lost_registration(self) -> None:
        """The server forgot us (it restarted): the events we hold are gone with it."""
        self._registered.clear()

    # --- threads
    def _step(self, ev: Dict[str, Any]) -> Dict[str, Any]:
        return run_event(self.registry, ev)

    def _run(self, events: List[Dict[str, Any]], speed: "_Speed") -> List[Dict[str, Any]]:
        """Runs a poll's events in turn. Once the worker is stopping, hands
        back those not started (stop() may have done so already, at its
        deadline)."""
        done: List[Dict[str, Any]] = []
        for i, ev in enumerate(events):
            if self._stop.is_set():
                with self._held_lock:
                    rest = [e["event_id"] for e in events[i:] if e["event_id"] in self._held]
                done.extend(_hand_back(eid) for eid in rest)
                break
            with self._held_lock:
                if ev["event_id"] not in self._held:
                    continue
                self._started.add(ev["event_id"])
            t0 = time.monotonic()
            done.append(self._step(ev))
            speed.add(time.monotonic() - t0)
        return done

    def _runner(self) -> None:
        """One of concurrency threads: a poll that does not wait carries the
        completions of the steps the thread just ran and takes its next steps
        if some are ready (one round trip per step, or per batch, while work
        is waiting, no hand-off between threads); otherwise the thread waits
        in a long poll."""
        b = Backoff()
        speed = _Speed(self._batch_fast)
        done: List[Dict[str, Any]] = []
        while True:
            stopping = self._stop.is_set()
            if stopping and not done:
                return
            if not self._registered.is_set():
                if stopping:
                    # Deregistered, or forgotten by the server: a stopping
                    # worker never registers again (a registration left
                    # behind would count as serving its handlers).
                    self._forget(done)
                    return
                try:
                    self._register()
                except TransportError:
                    return
            # A completion goes with a poll that waits at most
            # completion_wait_ms (it takes the next event if one comes by
            # then), and its step stays held until the server answered it:
            # stop() waits for held steps, so it never deregisters ahead of
            # a completion still on its way (the server would fail the step
            # and run it again). Long polls carry no completion, so stop()
            # never waits for one. At most
            # `pollers` threads wait in a long poll; the others wait here,
            # in Python, for a turn.
            wait_ms, gated = 0, False
            if done and not stopping and self.completion_wait_ms > 0 and self._gate.acquire(blocking=False):
                # A poll that waits, however briefly, counts as one of the
                # `pollers`: without a free turn it does not wait.
                gated, wait_ms = True, self.completion_wait_ms
            if not stopping and not done:
                if not self._gate.acquire(timeout=0.5):
                    continue  # look at the stop flag again
                gated, wait_ms = True, self.poll_timeout_ms
            try:
                try:
                    want = 0 if stopping else (self.batch if speed.fast() else 1)
                    events, answers = self.transport.poll(self.worker_id, want, wait_ms, done)
                finally:
                    if gated:
                        self._gate.release()
                b.reset()
            except NotRegistered:
                if stopping:
                    # Deregistered by stop(): the events still held were released.
                    self._forget(done)
                    return
                if done:
                    # The server restarted: these events died with it (their steps are retried).
                    log.warning("the server forgot this worker; %d completions dropped", len(done))
                    self._forget(done)
                    done = []
                self._lost_registration()
                continue
            except TransportError as exc:
                if self._gone.is_set():
                    # stop() deregistered and closed the transport: a long
                    # poll ends with an error (the in-process engine's 503).
                    log.debug("poll ended by the stop: %s", exc)
                    return
                d = b.next()
                log.warning("poll failed (%s); again in %.1fs", exc, d)
                if stopping and time.monotonic() > self._stop_deadline:
                    return
                time.sleep(d)
                continue
            # Hand-backs (only once stopping) are not completed steps.
            handed = {c["event_id"] for c in done if c.get("outcome") == "handed_back"} if self._stop.is_set() else ()
            for a in answers:
                if a.get("status") == "accepted":
                    if a.get("event_id") not in handed:
                        self.completed += 1
                else:
                    log.warning("completion of event %s: %s: %s", a.get("event_id"), a.get("status"),
                                a.get("message"))
            self._forget(done)
            done = []
            if not events:
                continue
            with self._held_lock:
                for ev in events:
                    self._held[ev["event_id"]] = time.monotonic()
            done = self._run(events, speed)

    def _forget(self, done: List[Dict[str, Any]]) -> None:
        with self._held_lock:
            for c in done:
                self._held.pop(c["event_id"], None)
                self._started.discard(c["event_id"])

    def _idle(self) -> bool:
        with self._held_lock:
            return not self._held

    def _heartbeat(self) -> None:
        while not self._stop.wait(max(0.2, min(self._complete_timeout / 3, 10.0))):
            with self._held_lock:
                ids = list(self._held)
            if not ids or not self._registered.is_set():
                continue
            try:
                self.transport.heartbeat(self.worker_id, ids)
            except NotRegistered:
                self._lost_registration()
            except TransportError as exc:
                log.warning("heartbeat failed: %s", exc)

    # --- lifecycle
    def start(self) -> None:
        self._register()
        self._threads = [threading.Thread(target=self._runner, name=f"tasker-step-{i}", daemon=True)
                         for i in range(self.concurrency)]
        self._threads.append(threading.Thread(target=self._heartbeat, name="tasker-heartbeat", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Stops polling, lets running steps finish (up to shutdown_timeout),
        waits until the server answered their completions; then hands back
        the events of batches not started (no attempt spent) and
        deregisters: the server fails what is still held, the handlers
        still running, as retryable (the attempt counts), so those steps
        run again elsewhere."""
        deadline = time.monotonic() + self.shutdown_timeout
        self._stop_deadline = deadline
        self._stop.set()
        while not self._idle() and time.monotonic() < deadline:
            time.sleep(0.01)
        # Past the deadline, the events of batches whose handlers have not
        # begun go back before the deregistration, which would count their
        # attempts.
        with self._held_lock:
            unstarted = [eid for eid in self._held if eid not in self._started]
            for eid in unstarted:
                del self._held[eid]
        if unstarted:
            try:
                self.transport.poll(self.worker_id, 0, 0, [_hand_back(eid) for eid in unstarted])
            except TransportError as exc:
                log.warning("handing back %d steps not started failed: %s", len(unstarted), exc)
        # Threads still in a long poll come back with 404 once deregistered;
        # the server fails what is still held as retryable.
        try:
            out = self.transport.deregister(self.worker_id)
            if out.get("released"):
                log.warning("released %d steps still running at shutdown", out["released"])
        except TransportError as exc:
            log.warning("deregister failed: %s", exc)
        self._gone.set()
        # Closing ends the in-process engine's long polls at once; over
        # HTTP, a thread still in a long poll is a daemon left to its end.
        self.transport.close()
        end = time.monotonic() + 2.0
        for t in self._threads:
            t.join(timeout=max(0.0, end - time.monotonic()))

    def run_forever(self) -> None:
        self.start()
        while not self._stop.is_set():
            self._stop.wait(0.5)
