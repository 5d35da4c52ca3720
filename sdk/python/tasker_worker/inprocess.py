"""The in-process transport: the engine embedded through libtasker (ctypes).

``InProcessTransport`` speaks the same /v1/workers protocol as
``HTTPTransport`` (docs/workers.md), through ``tasker_call`` of the C ABI
(docs/libtasker.md): no socket, no HTTP, the same bounds and errors. The
engine lives in this process; ``close`` stops it.
"""
from __future__ import annotations

import ctypes
import json
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

from .transport import Transport, TransportError, _json_default


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
                           ("tasker_stop", [ctypes.c_longlong, ctypes.c_longlong])):
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
        self.lib.take(self.lib.lib.tasker_stop(self.handle, timeout_ms))
