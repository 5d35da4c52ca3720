"""Python handlers in process (C ABI) against Go handlers, side by side in one engine.

    TASKER_LIB=libtasker.so python3 sdk/python/bench/inprocess.py [--tasks 300] [--rounds 3] \
        [--batch N] [--database-url URL] [--profile FILE]

One engine opened in this process through libtasker (tasker_open with the
bench templates and "demo_handlers": true): single/linear/diamond served by
the Go handler demo.noop inside the engine, and the same shapes served by
bench_handlers.Noop in a tasker_worker.Worker over InProcessTransport (the
threads of this process, tasker_call). Same engine, same configuration, same
database; only the handler differs. For each round and shape, Go then Python
(interleaved), as run.py: --tasks tasks created at once (8 threads of this
process, through tasker_call), steps/s from the first task's created_at to the
last completed_at, and the CPU time of this process (engine and Python) per
step; then --latency-tasks tasks one at a time, p50 of
completed_at - created_at. Prints medians over the rounds.

--database-url runs on PostgreSQL in a schema made for the run (needs psql).
--profile FILE writes the cProfile statistics of the worker's threads.
--shapes and --kinds run only some shapes and handler kinds (go, py): to
profile one side with perf, e.g.

    perf record -e cpu-clock -g -F 2000 -- python3 sdk/python/bench/inprocess.py \
        --shapes linear --kinds py --tasks 3000 --rounds 1 --latency-tasks 1
"""
import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from run import SHAPES, latency, throughput  # noqa: E402
from tasker_core.handler import HandlerRegistry  # noqa: E402
from tasker_worker import runtime  # noqa: E402
from tasker_worker.discovery import load_handlers  # noqa: E402
from tasker_worker.inprocess import InProcessTransport, PushWorker  # noqa: E402
from tests.harness import Server  # noqa: E402


class Engine:
    """The engine in this process, with the calls of harness.Server that run.py uses."""

    def __init__(self, transport: InProcessTransport) -> None:
        self.t = transport

    def call(self, method, path, body=None):
        st, out = self.t.call(method, path, body)
        if st >= 300:
            raise AssertionError(f"{method} {path}: {st} {out}")
        return out

    create = Server.create


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=300)
    p.add_argument("--latency-tasks", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=None,
                   help="the worker's threads (default 32), or with --push its calls at once (default 2)")
    p.add_argument("--pollers", type=int, default=None,
                   help="worker threads in a long poll at once (Worker's pollers; default the transport's, 2)")
    p.add_argument("--batch", type=int, default=None,
                   help="events a thread with fast handlers asks for at once (Worker's batch; default the "
                        "transport's, 8; 1: one event a poll)")
    p.add_argument("--completion-wait-ms", type=int, default=None,
                   help="how long a poll carrying a completion waits for the next step (Worker's; default its own)")
    p.add_argument("--pull-capacity", type=int, default=64,
                   help="the engine's pull_capacity: steps waiting for or held by the worker (default 64, whatever "
                        "the worker, so that polling and push workers are compared with the same bound)")
    p.add_argument("--push", action="store_true",
                   help="serve with a PushWorker (tasker_serve: the engine calls the handlers on its threads) "
                        "instead of polling threads")
    p.add_argument("--database-url", default=None)
    p.add_argument("--profile", default=None, help="write the worker threads' cProfile statistics here")
    p.add_argument("--shapes", default=",".join(SHAPES), help="shapes to run, comma-separated (default all)")
    p.add_argument("--kinds", default="go,py", help="handler kinds to run, comma-separated: go, py (default both)")
    a = p.parse_args()
    if a.push and (a.pollers is not None or a.completion_wait_ms is not None or a.batch is not None):
        p.error("--pollers, --completion-wait-ms and --batch are for polling threads: with --push the engine "
                "calls the handlers, one step a call")
    if a.concurrency is None:
        a.concurrency = 2 if a.push else 32
    a.shapes, a.kinds = a.shapes.split(","), a.kinds.split(",")
    for s in a.shapes:
        if s not in SHAPES:
            p.error(f"--shapes: {s!r} is not a shape: give some of {', '.join(SHAPES)}")
    for k in a.kinds:
        if k not in ("go", "py"):
            p.error(f"--kinds: {k!r} is not a kind: give go, py or both")
    tpls = [os.path.join(HERE, f"{k}_{s}.yaml") for k in ("go", "py") for s in SHAPES]
    work = tempfile.mkdtemp(prefix="inproc-bench-")
    cfg = {"templates": tpls, "demo_handlers": True, "complete_timeout_ms": 60000,
           "pull_capacity": a.pull_capacity}
    schema = None
    if a.database_url:
        schema = f"pyinproc_{os.getpid()}"
        subprocess.run(["psql", a.database_url, "-qc", f"CREATE SCHEMA {schema}"], check=True)
        url = a.database_url + ("&" if "?" in a.database_url else "?") + "search_path=" + schema
        cfg.update(database_url=url, migrate=True)
    else:
        cfg["database_path"] = os.path.join(work, "t.db")
    try:
        run(a, cfg)
    finally:
        if schema:
            subprocess.run(["psql", a.database_url, "-qc",
                            f"SET client_min_messages = warning; DROP SCHEMA {schema} CASCADE"], check=True)


def run(a, cfg):
    profs = []
    if a.profile:
        orig = runtime.Worker._runner

        def profiled(self):
            pr = cProfile.Profile()
            profs.append(pr)
            pr.enable()
            try:
                orig(self)
            finally:
                pr.disable()
        runtime.Worker._runner = profiled
    transport = InProcessTransport(cfg)
    registry = HandlerRegistry()
    load_handlers(os.path.join(HERE, "bench_handlers"), registry)
    extra = {} if a.completion_wait_ms is None else {"completion_wait_ms": a.completion_wait_ms}
    if a.batch is not None:
        extra["batch"] = a.batch
    if a.push:
        worker = PushWorker(transport, registry, ["bench"], concurrency=a.concurrency)
    else:
        worker = runtime.Worker(transport, registry, ["bench"], concurrency=a.concurrency, pollers=a.pollers,
                                **extra)
    worker.start()
    engine = Engine(transport)
    res, cpus = {}, {}
    try:
        for r in range(a.rounds):
            for shape in a.shapes:
                steps = SHAPES[shape]
                for kind in a.kinds:
                    name = f"{shape}_{kind}"
                    c0 = time.process_time()
                    tp = throughput(engine, name, a.tasks, steps)
                    us = (time.process_time() - c0) * 1e6 / (a.tasks * steps)
                    cpus.setdefault((shape, kind), []).append(us)
                    p50 = latency(engine, name, a.latency_tasks)
                    res.setdefault((shape, kind), []).append((tp, p50))
                    print(f"round {r + 1} {name:14s} {tp:8.0f} steps/s  p50 {p50 * 1000:7.2f} ms/task  "
                          f"CPU/step {us:4.0f} us", flush=True)
    finally:
        worker.stop()  # closes the transport: the engine stops
    if profs:
        st = pstats.Stats(profs[0])
        for pr in profs[1:]:
            st.add(pr)
        st.dump_stats(a.profile)
    if set(a.kinds) != {"go", "py"}:
        print("\nmedians over rounds:")
        for (shape, kind), runs in res.items():
            print(f"{shape:8s} {kind}: {statistics.median(x[0] for x in runs):.0f} steps/s, "
                  f"p50 {statistics.median(x[1] for x in runs) * 1000:.2f} ms, "
                  f"CPU/step {statistics.median(cpus[(shape, kind)]):.0f} us")
        return
    print("\nmedians over rounds (CPU/step: this process's CPU time, engine and Python, in the throughput phase,"
          " task creation and reads included, over its steps):")
    print(f"{'shape':8s} {'Go steps/s':>11s} {'Py steps/s':>11s} {'ratio':>6s} {'Go p50':>9s} {'Py p50':>9s} "
          f"{'added/step':>11s} {'Go CPU/step':>12s} {'Py CPU/step':>12s}")
    for shape in a.shapes:
        steps = SHAPES[shape]
        g, y = res[(shape, "go")], res[(shape, "py")]
        gt, yt = statistics.median(x[0] for x in g), statistics.median(x[0] for x in y)
        gl, yl = statistics.median(x[1] for x in g), statistics.median(x[1] for x in y)
        print(f"{shape:8s} {gt:11.0f} {yt:11.0f} {yt / gt:6.2f} {gl * 1000:8.2f}ms {yl * 1000:8.2f}ms "
              f"{(yl - gl) * 1000 / steps:9.2f}ms {statistics.median(cpus[(shape, 'go')]):10.0f}us "
              f"{statistics.median(cpus[(shape, 'py')]):10.0f}us")


if __name__ == "__main__":
    main()
