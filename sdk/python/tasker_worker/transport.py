"""Transports: how a worker talks to the engine.

``Transport`` is the interface the runtime uses; ``HTTPTransport`` speaks the
/v1/workers protocol of ``tasker serve`` (docs/workers.md). An in-process
transport (ctypes over libtasker) implements the same five methods.
"""
from __future__ import annotations

import http.client
import json
import json.scanner
import threading
import urllib.parse
from typing import Any, Callable, Dict, List, Optional, Tuple


class TransportError(Exception):
    """The engine could not be reached, or answered something unexpected."""


class NotRegistered(TransportError):
    """The engine does not know this worker (it restarted, or the registration expired)."""


class Transport:
    """What a worker runtime needs from the engine: the /v1/workers protocol
    (docs/workers.md) over ``request``, which each transport implements.
    Every method is thread-safe."""

    def request(self, method: str, path: str, body: Any = None,
                timeout: Optional[float] = None) -> Tuple[int, Any]:
        """Sends one request of the API; returns the status and the decoded JSON body."""
        raise NotImplementedError

    @staticmethod
    def _fail(method: str, path: str, status: int, body: Any) -> TransportError:
        msg = f"{method} {path}: {status} {body}"
        return NotRegistered(msg) if status == 404 else TransportError(msg)

    @staticmethod
    def _worker_path(worker_id: str, rest: str = "") -> str:
        return f"/v1/workers/{urllib.parse.quote(worker_id, safe='')}{rest}"

    def register(self, worker_id: str, namespaces: List[str], handlers: List[str], concurrency: int) -> Dict[str, Any]:
        st, body = self.request("POST", "/v1/workers", {"worker_id": worker_id, "namespaces": namespaces,
                                                       "handlers": handlers, "concurrency": concurrency})
        if st != 200:
            raise TransportError(f"register: {st} {body}")
        return body

    def poll(self, worker_id: str, max_events: int, timeout_ms: int,
             completions: List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
        """Sends completions, then waits up to timeout_ms for up to max_events events."""
        path = self._worker_path(worker_id, "/poll")
        req: Dict[str, Any] = {"max_events": max_events, "timeout_ms": timeout_ms}
        if completions:
            req["completions"] = completions
        st, body = self.request("POST", path, req, timeout=timeout_ms / 1000.0)
        if st != 200:
            raise self._fail("POST", path, st, body)
        return body.get("events") or [], body.get("completions") or []

    def heartbeat(self, worker_id: str, event_ids: Optional[List[str]] = None) -> Dict[str, Any]:
        path = self._worker_path(worker_id, "/heartbeat")
        st, body = self.request("POST", path, {} if event_ids is None else {"event_ids": event_ids})
        if st != 200:
            raise self._fail("POST", path, st, body)
        return body

    def deregister(self, worker_id: str) -> Dict[str, Any]:
        path = self._worker_path(worker_id)
        st, body = self.request("DELETE", path)
        if st != 200:
            raise self._fail("DELETE", path, st, body)
        return body

    def close(self) -> None:
        pass

    def default_pollers(self, concurrency: int) -> int:
        """How many idle threads of a worker wait in a long poll at once, by
        default. Over HTTP, all of them: a thread that finished a step sends
        its completion in the poll that waits for its next one, one request a
        step (fewer pollers add requests: docs/benchmarks.md)."""
        return concurrency

    def default_batch(self) -> int:
        """How many events a thread whose handlers are fast asks for at
        once, by default (Worker's batch). Over HTTP one: a poll per step
        costs little next to its request, and every event has a thread
        of its own at once."""
        return 1


class HTTPTransport(Transport):
    """The /v1/workers routes over HTTP/1.1 keep-alive, one connection per calling thread."""

    def __init__(self, server: str, timeout: float = 60.0, headers: Optional[Dict[str, str]] = None) -> None:
        u = urllib.parse.urlsplit(server if "//" in server else "http://" + server)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"--server {server!r}: give the URL of tasker serve's API, e.g. http://127.0.0.1:8080")
        self.scheme, self.host, self.port = u.scheme, u.hostname, u.port
        self.base = u.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self.headers.update(headers or {})
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            c = cls(self.host, self.port, timeout=self.timeout)
            self._local.conn = c
        return c

    def _drop(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def _call(self, method: str, path: str, body: Any = None, timeout: Optional[float] = None) -> Tuple[int, Any]:
        data = None if body is None else json.dumps(body, separators=(",", ":"), default=_json_default).encode()
        for attempt in (0, 1):
            c = self._conn()
            if timeout is not None:
                c.timeout = timeout
                if c.sock is not None:
                    c.sock.settimeout(timeout)
            try:
                c.request(method, self.base + path, body=data, headers=self.headers)
                resp = c.getresponse()
                raw = resp.read()
                status = resp.status
            except (http.client.HTTPException, OSError) as exc:
                self._drop()
                # A kept-alive connection the server closed meanwhile: one retry on a fresh one.
                if attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError,
                                                     ConnectionResetError)):
                    continue
                raise TransportError(f"{method} {path}: {exc}") from exc
            try:
                return status, json.loads(raw) if raw else None
            except ValueError as exc:
                raise TransportError(f"{method} {path}: answer {status} is not JSON: {raw[:200]!r}") from exc
        raise TransportError(f"{method} {path}: no answer")

    def request(self, method: str, path: str, body: Any = None,
                timeout: Optional[float] = None) -> Tuple[int, Any]:
        # A long poll waits up to its timeout on top of the connection's.
        return self._call(method, path, body, timeout=None if timeout is None else self.timeout + timeout)

    def close(self) -> None:
        self._drop()


def compact_encoder(allow_nan: bool = True) -> Callable[[Any], str]:
    """A function that encodes a value as json.dumps(v, separators=(",", ":"),
    default=_json_default, allow_nan=allow_nan) does, errors included, with
    less work per call: json.dumps with arguments builds a JSONEncoder on
    every call, which costs more than encoding a small completion
    (docs/benchmarks.md, "Lighter push calls"). The encoder keeps no state
    between calls: one serves every thread."""
    return json.JSONEncoder(separators=(",", ":"), default=_json_default, allow_nan=allow_nan).encode


def compact_decoder() -> Callable[[str], Any]:
    """A function that decodes JSON as json.loads does, faster for the
    compact JSON the engine writes (no whitespace around the value): it
    calls the decoder's scanner itself, without json.loads' checks of
    encoding and whitespace, and falls back to json.loads (and its error)
    for anything else. One per thread: the scanner keeps a memo while it
    scans, which threads of a free-threaded Python would share."""
    scan = json.scanner.make_scanner(json.JSONDecoder())

    def decode(s: str) -> Any:
        try:
            v, end = scan(s, 0)
        except StopIteration:
            end = -1
        return v if end == len(s) else json.loads(s)
    return decode


def _json_default(v: Any) -> Any:
    import datetime
    import uuid
    if isinstance(v, datetime.datetime):
        s = v.isoformat()
        return s[:-6] + "Z" if s.endswith("+00:00") else s
    if isinstance(v, (datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (set, frozenset)):
        return list(v)
    if hasattr(v, "model_dump"):
        return v.model_dump(mode="json")
    raise TypeError(f"{type(v).__name__} is not JSON serializable")
