"""The in-process transport: the engine embedded through libtasker (ctypes).

``InProcessTransport`` speaks the same /v1/workers protocol as
``HTTPTransport`` (docs/workers.md), through ``tasker_call`` of the C ABI
(docs/libtasker.md): no socket, no HTTP, the same bounds and errors. The
engine lives in this process; ``close`` stops it.
"""
from __future__ import annotations

import atexit
import ctypes
import json
import logging
import os
import socket
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from tasker_core.handler import HandlerRegistry

from .execute import failure, run_event
from .runtime import _hand_back, served_handlers
from .transport import Transport, TransportError, _json_default, compact_decoder, compact_encoder

log = logging.getLogger("tasker_worker")

# tasker_serve's step function: (token, events, len).
STEP_FN = ctypes.CFUNCTYPE(None, ctypes.c_ulonglong, ctypes.c_void_p, ctypes.c_size_t)

# Whether this thread (an engine thread, for a step function) keeps its
# Python thread state, and its JSON coders: see PushWorker._on_step.
_kept = threading.local()

# A completion as JSON; a NaN or an infinity is not JSON, and the engine
# would refuse the whole array: it fails the completion alone instead.
_encode = compact_encoder(allow_nan=False)


def _thread_encoder() -> Callable[[Any], str]:
    """A function that encodes as _encode does, errors included, for one
    thread: the json module's C encoder built once, with markers (the
    containers being encoded, which find a result that holds itself) of
    its own. JSONEncoder.encode builds that encoder anew on every call:
    1.77 against 1.10 µs for a small completion (docs/benchmarks.md, "A
    leaner Python side of a push call"). The C encoder leaves a
    container's marker behind when an error takes it out of the container:
    the markers are cleared after a failed encoding, or the same object
    encoded again (a result a handler keeps and returns each time) would be
    taken for a cycle, and the failed result held. Without the C encoder (a
    Python built without it, or whose encoder takes other arguments),
    _encode."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _encode
    markers: Dict[int, Any] = {}
    try:
        enc = make(markers, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False,
                   False)
    except TypeError:
        return _encode
    join = "".join

    def encode(v: Any) -> str:
        try:
            return join(enc(v, 0))
        except BaseException:
            markers.clear()
            raise
    return encode


def _thread_coders() -> Tuple[Tuple[Callable[[str], Any], Callable[[Any], str]], bool]:
    """This thread's JSON decoder and encoder, and whether they were made
    now (its first call). Each thread has its own: the decoder's scanner
    keeps a memo while it scans, and the encoder's markers would mix two
    threads' containers (Python code run by the encoder, a `default` or a
    dict subclass's items(), lets another thread in): a marker removed by
    the other thread, or an object encoded by both taken for a cycle."""
    c = getattr(_kept, "coders", None)
    if c is not None:
        return c, False
    c = _kept.coders = (compact_decoder(), _thread_encoder())
    return c, True


def find_library(path: Optional[str] = None) -> str:
    """The libtasker shared library: path, else $TASKER_LIB, else ./libtasker.so."""
    lib = path or os.environ.get("TASKER_LIB") or os.path.join(os.getcwd(), "libtasker.so")
    if not os.path.exists(lib):
        raise ValueError(f"libtasker {lib!r} does not exist: build it with `make libtasker` and give its path "
                         f"(--lib or TASKER_LIB)")
    return lib


class Library:
    """The C ABI's functions, typed. One per process is enough; it is thread-safe."""

    _lock = threading.Lock()
    _loaded: Dict[str, "Library"] = {}

    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path)
        for name, args in (("tasker_open", [ctypes.c_char_p]),
                           ("tasker_call", [ctypes.c_longlong, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
                           ("tasker_cleanup_timeouts", [ctypes.c_longlong]),
                           ("tasker_stop", [ctypes.c_longlong, ctypes.c_longlong]),
                           ("tasker_serve", [ctypes.c_longlong, ctypes.c_char_p, STEP_FN])):
            fn = getattr(self.lib, name)
            fn.argtypes = args
            fn.restype = ctypes.c_void_p  # the caller frees it with tasker_free
        # tasker_free does not block: called without releasing the GIL
        # (PyDLL), it costs no hand-off of the GIL, which a thread pays
        # after each call that releases it (up to sys.getswitchinterval()
        # while other threads run Python).
        self.free = ctypes.PyDLL(path).tasker_free
        self.free.argtypes = [ctypes.c_void_p]
        self.free.restype = None
        # Called by a step function, which holds the GIL: it only copies.
        self.step_result = ctypes.PyDLL(path).tasker_step_result
        self.step_result.argtypes = [ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_size_t]
        self.step_result.restype = None

    @classmethod
    def load(cls, path: str) -> "Library":
        with cls._lock:
            lib = cls._loaded.get(path)
            if lib is None:
                lib = cls._loaded[path] = Library(path)
            return lib

    def take(self, ptr: int) -> Any:
        if not ptr:
            raise TransportError("libtasker returned nothing")
        try:
            out = json.loads(ctypes.string_at(ptr).decode())
        finally:
            self.free(ptr)
        if isinstance(out, dict) and "error" in out:
            err = out["error"]
            raise TransportError(f"libtasker: {err.get('kind')}: {err.get('message')}")
        return out


class InProcessTransport(Transport):
    """Opens an engine in this process with config (tasker_open's JSON) and
    talks to it through tasker_call. Releasing the GIL during each call (ctypes
    does), a long poll on one thread does not block the handlers on others."""

    def __init__(self, config: Dict[str, Any], lib_path: Optional[str] = None) -> None:
        self.lib = Library.load(find_library(lib_path))
        self.handle = self.lib.take(self.lib.lib.tasker_open(json.dumps(config).encode()))["handle"]
        self._closed = False

    def call(self, method: str, path: str, body: Any = None) -> Tuple[int, Any]:
        """One request to the engine's API (docs/api.md), in process."""
        data = None if body is None else json.dumps(body, separators=(",", ":"), default=_json_default).encode()
        out = self.lib.take(self.lib.lib.tasker_call(self.handle, method.encode(), path.encode(), data))
        return out["status"], out["body"]

    def request(self, method: str, path: str, body: Any = None,
                timeout: Optional[float] = None) -> Tuple[int, Any]:
        # The call blocks its thread, without the GIL, for as long as the
        # request says (a long poll's timeout_ms): nothing to add here.
        return self.call(method, path, body)

    def default_pollers(self, concurrency: int) -> int:
        # In process, each thread parked in the engine's long poll costs it a
        # hand-off between OS threads per event (a thread entering Go from C
        # is locked to its goroutine): two pollers, the other idle threads
        # wait in Python (docs/benchmarks.md).
        return min(2, concurrency)

    def default_batch(self) -> int:
        # In process, a poll is a call into the engine and, when it waits, a
        # hand-off between OS threads: a thread whose handlers are fast
        # takes up to 8 events a call and runs them in turn (Worker's
        # batch; docs/benchmarks.md).
        return 8

    def cleanup_timeouts(self) -> int:
        """Fails as retryable, now, the steps held past the complete timeout."""
        return self.lib.take(self.lib.lib.tasker_cleanup_timeouts(self.handle))["expired"]

    def close(self, timeout_ms: int = 30000) -> None:
        if self._closed:
            return
        self._closed = True
        self.lib.take(self.lib.lib.tasker_stop(self.handle, int(timeout_ms)))


class PushWorker:
    """Runs the registry's handlers for an in-process engine's steps on the
    engine's own threads (tasker_serve, docs/libtasker.md): no thread of
    this process polls; the engine calls in with the events, at most
    ``concurrency`` calls at once, and takes their completions before the
    call returns. The same events, completions and bounds as a polling
    Worker (it is a pull worker of the engine's API, listed under its id);
    the difference is that a step costs no hand-off between OS threads.

    concurrency bounds the engine's calls at once, each with one event.
    Python runs one thread at a time, so for no-op and CPU-bound handlers
    2 is the fastest (more calls only queue for the GIL); handlers that
    wait on I/O (releasing the GIL) want as many as they may wait at once.
    stop() (and the interpreter's exit) stops the engine: the calls in
    progress finish, up to shutdown_timeout seconds.
    """

    def __init__(self, transport: "InProcessTransport", registry: HandlerRegistry, namespaces: List[str],
                 concurrency: int = 2, worker_id: Optional[str] = None,
                 handlers: Optional[List[str]] = None, shutdown_timeout: float = 30.0) -> None:
        self.handlers = served_handlers(registry, namespaces, concurrency, handlers)
        self.transport = transport
        self.registry = registry
        self.namespaces = list(namespaces)
        if shutdown_timeout <= 0:
            raise ValueError(f"shutdown_timeout {shutdown_timeout}: give the seconds a stop waits, more than 0")
        self.concurrency = concurrency
        self.shutdown_timeout = shutdown_timeout
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-push"
        self._fn = STEP_FN(self._on_step)  # kept alive as long as the engine may call it
        self._started = False
        self._stopping = False
        self._lock = threading.Lock()
        self._calls = threading.Condition(self._lock)  # notified when _in_calls drops, while stopping
        self._in_calls = 0  # step-function calls in progress
        self.completed = 0  # steps whose handler ran (handed-back ones not counted)

    def _on_step(self, token: int, ptr: int, n: int) -> None:
        # The engine's threads are not Python's: ctypes gives each call a
        # thread state and drops it when the call returns, which costs
        # more than the step. One more PyGILState_Ensure, never released,
        # keeps the thread's state for its next calls (one per engine
        # thread, which the Go runtime reuses; stop() waits for the calls
        # in progress, so none runs once the interpreter finalizes). The
        # thread keeps its JSON decoder and encoder with it. (The count is
        # kept under the bare lock: the Condition's own `with` is Python
        # code, and this runs once a step.)
        with self._lock:
            self._in_calls += 1
        out, ran = b"[]", 0
        try:
            coders, made = _thread_coders()
            if made:
                _ensure()
            out, ran = self._run(coders, ctypes.string_at(ptr, n))
        except BaseException as exc:  # noqa: BLE001 - nothing may escape into the engine's thread
            # The engine fails each event without a completion, retryable.
            log.error("push worker: the step function failed: %r", exc)
            out = b"[]"
        finally:
            try:
                self.transport.lib.step_result(token, out, len(out))
            finally:
                with self._lock:
                    self._in_calls -= 1
                    self.completed += ran
                    if self._stopping:
                        self._calls.notify_all()

    def _run(self, coders: Tuple[Callable[[str], Any], Callable[[Any], str]], raw: bytes) -> Tuple[bytes, int]:
        """The completions' JSON array for the events' JSON array, and how
        many handlers ran, with this thread's decoder and encoder. Each
        event gets its completion alone: one that does not encode (a result
        that is not JSON: an object, a NaN) or an event the worker cannot
        read fails its own step only."""
        decode, encode = coders
        try:
            events = decode(raw.decode())
        except (ValueError, RecursionError) as exc:
            # The engine sent what it should not: each event fails, retryable.
            log.error("push worker: the events are not JSON: %s", exc)
            return b"[]", 0
        parts: List[str] = []
        ran = 0
        for ev in events:
            try:
                part, did = self._one(ev, encode)
            except Exception as exc:  # noqa: BLE001 - an event the worker cannot read: retryable
                log.error("push worker: event %.200r failed: %r", ev, exc)
                part, did = json.dumps(failure("worker_error", f"the push worker failed to run the step: {exc!r}", True)), 0
            parts.append(part)
            ran += did
        return ("[" + ",".join(parts) + "]").encode(), ran

    def _one(self, ev: Dict[str, Any], encode: Callable[[Any], str]) -> Tuple[str, int]:
        """The completion of one event as JSON, and whether its handler ran."""
        if not isinstance(ev, dict):
            raise TypeError(f"the event is not an object: {type(ev).__name__}")
        if self._stopping:
            # The engine is stopping: back to the queue, the attempt not
            # counted.
            return encode(_hand_back(ev["event_id"])), 0
        c = run_event(self.registry, ev)
        try:
            return encode(c), 1
        except Exception as exc:  # noqa: BLE001 - the handler ran: its step fails alone, not retried
            log.warning("step %s (handler %s): its result is not JSON: %s", ev.get("step_name"),
                        ev.get("handler_name"), exc)
            return json.dumps(failure("invalid_handler_result", f"the handler's result is not JSON: {exc}", False)), 1

    def start(self) -> None:
        if self._started:
            raise RuntimeError("this PushWorker is started already")
        cfg = {"worker_id": self.worker_id, "namespaces": self.namespaces, "handlers": self.handlers,
               "concurrency": self.concurrency}
        self.transport.lib.take(self.transport.lib.lib.tasker_serve(
            self.transport.handle, json.dumps(cfg).encode(), self._fn))
        self._started = True
        # The engine's threads must not call into an interpreter that is
        # finalizing: a process that exits without stop() stops first.
        atexit.register(self.stop)
        log.info("serving worker %s in process: namespaces %s, handlers %s, concurrency %d", self.worker_id,
                 self.namespaces, self.handlers, self.concurrency)

    def stop(self) -> None:
        """Stops the engine (the transport's, whatever else uses it): the
        calls in progress finish (up to shutdown_timeout; an event that
        comes in once stop() has begun is handed back) and their
        completions are stored; then nothing calls in. Calls that outlive
        the engine's timeout are waited for up to shutdown_timeout more."""
        self._stopping = True
        atexit.unregister(self.stop)
        try:
            self.transport.close(timeout_ms=self.shutdown_timeout * 1000)
        except TransportError as exc:
            # still_running: the engine gave up on calls that outlived the
            # timeout (their steps run again); they still run here.
            log.error("stopping the engine: %s", exc)
        with self._calls:
            if not self._calls.wait_for(lambda: self._in_calls == 0, timeout=self.shutdown_timeout):
                log.error("%d handlers still run after the stop: the process must not exit before they "
                          "return", self._in_calls)


def _ensure() -> int:
    f = ctypes.pythonapi.PyGILState_Ensure
    f.restype = ctypes.c_int
    return f()
