"""Python worker over HTTP against Go handlers, side by side in one run.

    python3 sdk/python/bench/run.py [--tasks 300] [--rounds 3] [--database-url URL]

--database-url runs on PostgreSQL, in a schema made for the run (search_path)
and dropped after it (needs psql).

Starts `tasker serve` (built from the tree, or $TASKER_BIN) with no-op
templates in one namespace: single/linear/diamond served by the built-in Go
handler demo.noop, and the same shapes served by bench_handlers.Noop in a
Python worker process (python3 -m tasker_worker). For each round and shape,
Go then Python (interleaved):
  throughput: --tasks tasks created at once (8 client threads), steps/s from the first create to
              the last completion (the tasks' created_at and completed_at);
  latency:    --latency-tasks tasks one at a time, p50 of completed_at -
              created_at; "added per step" is (Python p50 - Go p50) / steps;
  CPU/step:   the CPU time the server process, and the Python worker process,
              used during the throughput phase, over its steps (/proc; Linux).
Prints medians over the rounds.

--drain N (after the rounds, once per round and shape): the throughput of one
Python worker process alone, not bounded by the creation of tasks. A worker id
is registered, N Python tasks are created (their steps wait for it), then a
worker process starts under that id; steps/s is N x steps over the span from
the start of the worker process (its interpreter's start and imports
included, so the figure errs low) to the last task's completion.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from tests.harness import Server, WorkerProc  # noqa: E402

SHAPES = {"single": 1, "linear": 4, "diamond": 4}


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def finish(server, ids, timeout=300):
    deadline = time.time() + timeout
    out = []
    for t in ids:
        while True:
            r = server.call("GET", f"/v1/tasks/{t}")
            if r["status"] == "complete":
                out.append((ts(r["created_at"]), ts(r["completed_at"])))
                break
            if r["status"] in ("error", "cancelled") or time.time() > deadline:
                raise RuntimeError(f"task {t}: {r['status']}")
            time.sleep(0.01)
    return out


def cpu(pid):
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(server, name, n, steps):
    # Created from 8 threads, so that creation is not what limits the rate.
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: server.create("bench", name, {}), range(n)))
    times = finish(server, ids)
    span = max(c for _, c in times) - min(s for s, _ in times)
    return n * steps / span


def latency(server, name, n):
    lat = []
    for _ in range(n):
        t = server.create("bench", name, {})
        (s, c), = finish(server, [t])
        lat.append(c - s)
    return statistics.median(lat)


def drain(server, a, shape, steps):
    wid = f"bench-drain-{shape}"
    server.call("POST", "/v1/workers", {"worker_id": wid, "namespaces": ["bench"],
                                        "handlers": ["bench_handlers.Noop"], "concurrency": a.concurrency})
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: server.create("bench", f"{shape}_py", {}), range(a.drain)))
    t0 = time.time()
    worker = WorkerProc(server.url, ["bench"], os.path.join(HERE, "bench_handlers"), concurrency=a.concurrency,
                        worker_id=wid)
    try:
        times = finish(server, ids)
    finally:
        worker.stop()
    return len(times) * steps / (max(c for _, c in times) - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=300)
    p.add_argument("--latency-tasks", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--database-url", default=None)
    p.add_argument("--drain", type=int, default=0, help="backlog of Python tasks drained per round and shape")
    a = p.parse_args()
    tpls = [os.path.join(HERE, f"{k}_{s}.yaml") for k in ("go", "py") for s in SHAPES]
    url, schema = a.database_url, None
    if url:
        schema = f"pybench_{os.getpid()}"
        subprocess.run(["psql", a.database_url, "-qc", f"CREATE SCHEMA {schema}"], check=True)
        url += ("&" if "?" in url else "?") + "search_path=" + schema
    try:
        run(a, tpls, url)
    finally:
        if schema:
            subprocess.run(["psql", a.database_url, "-qc", f"SET client_min_messages = warning; DROP SCHEMA {schema} CASCADE"], check=True)


def run(a, tpls, url):
    server = Server(tpls, complete_timeout="1m", database_url=url).start()
    t0 = time.time()
    worker = WorkerProc(server.url, ["bench"], os.path.join(HERE, "bench_handlers"), concurrency=a.concurrency)
    worker.wait_registered(server)
    res, cpus = {}, {}
    try:
        for r in range(a.rounds):
            for shape, steps in SHAPES.items():
                for kind in ("go", "py"):
                    name = f"{shape}_{kind}"
                    c0 = (cpu(server.proc.pid), cpu(worker.proc.pid))
                    tp = throughput(server, name, a.tasks, steps)
                    c1 = (cpu(server.proc.pid), cpu(worker.proc.pid))
                    us = [(c1[i] - c0[i]) * 1e6 / (a.tasks * steps) for i in (0, 1)]
                    cpus.setdefault((shape, kind), []).append(us)
                    p50 = latency(server, name, a.latency_tasks)
                    res.setdefault((shape, kind), []).append((tp, p50))
                    print(f"round {r + 1} {name:14s} {tp:8.0f} steps/s  p50 {p50 * 1000:7.2f} ms/task  "
                          f"CPU/step: server {us[0]:4.0f} us, Python worker {us[1]:4.0f} us", flush=True)
    finally:
        worker.stop()
    drains = {}
    try:
        for r in range(a.rounds if a.drain else 0):
            for shape, steps in SHAPES.items():
                d = drain(server, a, shape, steps)
                drains.setdefault(shape, []).append(d)
                print(f"round {r + 1} drain {shape:8s} {d:8.0f} steps/s (one Python worker, {a.drain} tasks)",
                      flush=True)
    finally:
        server.stop()
    for shape, d in drains.items():
        print(f"drain {shape:8s} median {statistics.median(d):6.0f} steps/s  rounds {' '.join(f'{x:.0f}' for x in d)}")
    print("\nCPU per step, medians (throughput phase; creation and reads included, the same for both):")
    for (shape, kind), v in cpus.items():
        print(f"{shape:8s} {kind}: server {statistics.median(x[0] for x in v):5.0f} us, "
              f"Python worker {statistics.median(x[1] for x in v):5.0f} us")
    print("\nmedians over rounds:")
    print(f"{'shape':8s} {'Go steps/s':>11s} {'Py steps/s':>11s} {'ratio':>6s} {'Go p50':>9s} {'Py p50':>9s} {'added/step':>11s}")
    for shape, steps in SHAPES.items():
        g = res[(shape, "go")]
        y = res[(shape, "py")]
        gt, yt = statistics.median(x[0] for x in g), statistics.median(x[0] for x in y)
        gl, yl = statistics.median(x[1] for x in g), statistics.median(x[1] for x in y)
        print(f"{shape:8s} {gt:11.0f} {yt:11.0f} {yt / gt:6.2f} {gl * 1000:8.2f}ms {yl * 1000:8.2f}ms "
              f"{(yl - gl) * 1000 / steps:9.2f}ms")


if __name__ == "__main__":
    main()
