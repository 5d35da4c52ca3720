"""A real `tasker serve` built from the tree, and worker processes, for the tests."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Dict, List, Optional

SDK = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(SDK))
EXAMPLES = os.path.join(ROOT, "examples", "python")
FIXTURES = os.path.join(SDK, "tests", "fixtures")

_BIN: Optional[str] = None


def tasker_bin() -> str:
    """TASKER_BIN, or `go build` of cmd/tasker into a temporary directory (once)."""
    global _BIN
    if _BIN:
        return _BIN
    if os.environ.get("TASKER_BIN"):
        _BIN = os.environ["TASKER_BIN"]
        return _BIN
    out = os.path.join(tempfile.mkdtemp(prefix="tasker-bin-"), "tasker")
    subprocess.run(["go", "build", "-o", out, "./cmd/tasker"], cwd=ROOT, check=True)
    _BIN = out
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, templates: List[str], db: Optional[str] = None, complete_timeout: str = "3s",
                 port: Optional[int] = None, database_url: Optional[str] = None) -> None:
        # database_url: PostgreSQL (migrated, the engine's workers in the serve process).
        self.database_url = database_url
        self.dir = tempfile.mkdtemp(prefix="tasker-serve-")
        self.db = db or os.path.join(self.dir, "t.db")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tpl_dir = os.path.join(self.dir, "templates")
        os.makedirs(self.tpl_dir, exist_ok=True)
        for t in templates:
            with open(t) as src, open(os.path.join(self.tpl_dir, os.path.basename(t)), "w") as dst:
                dst.write(src.read())
        self.complete_timeout = complete_timeout
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Server":
        self.log = open(os.path.join(self.dir, "serve.log"), "ab")
        backend = (["--database-url", self.database_url, "--migrate", "--workers"] if self.database_url
                   else ["--db", self.db])
        self.proc = subprocess.Popen([tasker_bin(), "serve", *backend, "--templates", self.tpl_dir,
                                      "--http", f"127.0.0.1:{self.port}",
                                      "--pull-complete-timeout", self.complete_timeout],
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1).read()
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tasker serve exited {self.proc.returncode}: {self.logs()}")
                time.sleep(0.1)
        raise RuntimeError("tasker serve did not answer /health within 30s: " + self.logs())

    def logs(self) -> str:
        with open(os.path.join(self.dir, "serve.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path}: {e.code} {e.read()[:2000]!r}") from None

    def create(self, namespace: str, name: str, context: Dict[str, Any], version: str = "1.0.0") -> str:
        body = {"namespace": namespace, "name": name, "version": version, "context": context,
                "initiator": "test", "source_system": "test", "reason": "test",
                "correlation_id": str(uuid.uuid4()), "idempotency_key": str(uuid.uuid4()), "tags": [],
                "requested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return self.call("POST", "/v1/tasks", body)["task_uuid"]

    def wait(self, task: str, statuses=("complete",), timeout: float = 60) -> Dict[str, Any]:
        deadline = time.time() + timeout
        t: Dict[str, Any] = {}
        while time.time() < deadline:
            t = self.call("GET", f"/v1/tasks/{task}")
            if t["status"] in statuses:
                return t
            if t["status"] in ("complete", "error", "cancelled") and t["status"] not in statuses:
                break
            time.sleep(0.05)
        raise AssertionError(f"task {task} is {t.get('status')}, want {statuses}: {self.steps(task)}")

    def steps(self, task: str) -> Dict[str, Dict[str, Any]]:
        return {s["name"]: s for s in self.call("GET", f"/v1/tasks/{task}/workflow_steps")}


class WorkerProc:
    def __init__(self, server_url: str, namespaces: List[str], handlers: str, extra_env: Optional[Dict[str, str]] = None,
                 concurrency: int = 4, worker_id: Optional[str] = None) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = SDK + os.pathsep + env.get("PYTHONPATH", "")
        env.update(extra_env or {})
        args = [sys.executable, "-m", "tasker_worker", "--server", server_url, "--handlers", handlers,
                "--concurrency", str(concurrency), "--shutdown-timeout", "10"]
        for ns in namespaces:
            args += ["--namespace", ns]
        if worker_id:
            args += ["--worker-id", worker_id]
        self.dir = tempfile.mkdtemp(prefix="tasker-worker-")
        self.log = open(os.path.join(self.dir, "worker.log"), "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log)

    def wait_registered(self, server: "Server", worker_count: int = 1, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}: {self.logs()}")
            if len(server.call("GET", "/v1/workers/metrics")["workers"]) >= worker_count:
                return
            time.sleep(0.05)
        raise AssertionError("the worker did not register: " + self.logs())

    def logs(self) -> str:
        with open(os.path.join(self.dir, "worker.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        return self.proc.wait()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
