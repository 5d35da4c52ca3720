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

--drain N (after the rounds, once per round and shape, Go and Python taking
turns): steps/s of the handlers alone, not bounded by the creation of tasks
in this process (8 Python threads that also hold the GIL), as `tasker bench
--burn-down` and run.py's --drain measure it. An engine whose workers take
no namespace creates N tasks and stops; a fresh engine on the same database
(with, for Python, its push or polling worker) drains them. steps/s is N x
steps over the span from just before the fresh engine opens (its open
included, so the figure errs low) to the last task's completed_at; CPU/step
is this process's from the same start to the end of the reads of every
task's times, which come after the last task completes (N GETs, the same
for Go and Python). Python's span also holds its
worker's start, and the bench's thread that waits for the last task (a
GET every 10 ms) shares the GIL with Python's handlers only: both err
against Python. On PostgreSQL the backlogs share the run's schema, so its tables
grow from one drain to the next (the order of Go and Python alternates by
round). With --tasks 0 only the drains run.

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
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from run import SHAPES, finish, latency, throughput  # noqa: E402
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
    p.add_argument("--tasks", type=int, default=300, help="tasks of a round's throughput phase (0: no rounds)")
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
    p.add_argument("--call-cpu", action="store_true",
                   help="with --push: also the CPU time the Python side of each push call takes, per step, printed "
                        "for each drain (time.thread_time around PushWorker's step function, wrapped for the whole "
                        "run; the wrapper's own cost lowers Python's steps/s: compare those without it)")
    p.add_argument("--drain", type=int, default=0,
                   help="after the rounds, drain a backlog of this many tasks per round, shape and kind (0: none)")
    p.add_argument("--database-url", default=None)
    p.add_argument("--profile", default=None, help="write the worker threads' cProfile statistics here")
    p.add_argument("--shapes", default=",".join(SHAPES), help="shapes to run, comma-separated (default all)")
    p.add_argument("--kinds", default="go,py", help="handler kinds to run, comma-separated: go, py (default both)")
    a = p.parse_args()
    if a.push and (a.pollers is not None or a.completion_wait_ms is not None or a.batch is not None):
        p.error("--pollers, --completion-wait-ms and --batch are for polling threads: with --push the engine "
                "calls the handlers, one step a call")
    if a.call_cpu and not a.push:
        p.error("--call-cpu measures PushWorker's calls: give --push")
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
    if a.drain < 0 or a.tasks < 0 or not (a.tasks or a.drain):
        p.error(f"--tasks {a.tasks} --drain {a.drain}: give the tasks of a round (0: no rounds, only the drains) "
                f"and of a backlog (0: none), not both 0")
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


class CallCPU:
    """The CPU time of the Python side of push calls: PushWorker's step
    function wrapped, time.thread_time() on each side (the engine thread's
    own CPU; ctypes' entry and exit outside the function are not in it),
    summed per thread without a lock."""

    def __init__(self) -> None:
        self.per_thread = {}
        orig = PushWorker._on_step
        per_thread = self.per_thread

        def timed(worker, token, ptr, n):
            t0 = time.thread_time()
            try:
                orig(worker, token, ptr, n)
            finally:
                k = threading.get_ident()
                calls, secs = per_thread.get(k, (0, 0.0))
                per_thread[k] = (calls + 1, secs + time.thread_time() - t0)
        PushWorker._on_step = timed

    def total(self):
        calls = sum(c for c, _ in list(self.per_thread.values()))
        return calls, sum(x for _, x in list(self.per_thread.values()))


def new_worker(a, transport, registry):
    """The Python worker the flags ask for, not started."""
    if a.push:
        return PushWorker(transport, registry, ["bench"], concurrency=a.concurrency)
    extra = {} if a.completion_wait_ms is None else {"completion_wait_ms": a.completion_wait_ms}
    if a.batch is not None:
        extra["batch"] = a.batch
    return runtime.Worker(transport, registry, ["bench"], concurrency=a.concurrency, pollers=a.pollers, **extra)


def drain(a, cfg, registry, shape, kind):
    """steps/s and CPU/step of a fresh engine draining a backlog of --drain tasks (see --drain)."""
    name = f"{shape}_{kind}"
    backlog = InProcessTransport(dict(cfg, namespaces=["bench_drain_nobody"]))
    try:
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: Engine(backlog).create("bench", name, {}), range(a.drain)))
    finally:
        backlog.close()
    calls0 = a.call_cpu.total() if a.call_cpu else (0, 0.0)
    c0, t0 = time.process_time(), time.time()
    transport = InProcessTransport(cfg)
    worker = new_worker(a, transport, registry) if kind == "py" else None
    engine = Engine(transport)
    try:
        if worker:
            worker.start()
        # The last task first, so that the GETs of all of them (finish)
        # come once the drain is over, not one per task during it.
        finish(engine, ids[-1:])
        times = finish(engine, ids)
        cpu = time.process_time() - c0
    finally:
        if worker:
            worker.stop()  # closes the transport
        else:
            transport.close()
    steps = a.drain * SHAPES[shape]
    if a.call_cpu and kind == "py":
        calls, secs = a.call_cpu.total()
        print(f"  {shape}_py drain: {calls - calls0[0]} push calls, {(secs - calls0[1]) * 1e6 / steps:.1f} us of "
              f"Python CPU per step in them", flush=True)
    return steps / (max(c for _, c in times) - t0), cpu * 1e6 / steps


def drains(a, cfg, registry):
    res = {}
    for r in range(a.rounds):
        for shape in a.shapes:
            for kind in (a.kinds if r % 2 == 0 else a.kinds[::-1]):
                if "database_path" in cfg:  # a fresh database for each backlog
                    cfg = dict(cfg, database_path=os.path.join(os.path.dirname(cfg["database_path"]),
                                                               f"drain-{r}-{shape}-{kind}.db"))
                sps, us = drain(a, cfg, registry, shape, kind)
                res.setdefault((shape, kind), []).append((sps, us))
                print(f"drain round {r + 1} {shape}_{kind:3s} {sps:8.0f} steps/s  CPU/step {us:4.0f} us", flush=True)
    print(f"\ndrains of {a.drain} tasks, medians over rounds (CPU/step: this process's, over the drain; "
          f"paired: the median of each round's py/go, the two drains of a round seconds apart):")
    both = set(a.kinds) == {"go", "py"}
    print(f"{'shape':8s} " + " ".join(f"{k + ' steps/s':>11s}" for k in a.kinds)
          + (" py/go paired" if both else "") + " " + " ".join(f"{k + ' CPU/step':>12s}" for k in a.kinds))
    for shape in a.shapes:
        sps = {k: statistics.median(x[0] for x in res[(shape, k)]) for k in a.kinds}
        us = {k: statistics.median(x[1] for x in res[(shape, k)]) for k in a.kinds}
        paired = ""
        if both:
            pairs = [p[0] / g[0] for g, p in zip(res[(shape, "go")], res[(shape, "py")])]
            paired = f" {sps['py'] / sps['go']:5.2f} {statistics.median(pairs):6.3f}"
        print(f"{shape:8s} " + " ".join(f"{sps[k]:11.0f}" for k in a.kinds) + paired + " "
              + " ".join(f"{us[k]:10.0f}us" for k in a.kinds))


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
    if a.call_cpu:
        a.call_cpu = CallCPU()
    registry = HandlerRegistry()
    load_handlers(os.path.join(HERE, "bench_handlers"), registry)
    res, cpus = {}, {}
    if a.tasks:
        rounds(a, cfg, registry, res, cpus)
        report(a, res, cpus)
    if a.drain:
        drains(a, cfg, registry)
    if profs:
        st = pstats.Stats(profs[0])
        for pr in profs[1:]:
            st.add(pr)
        st.dump_stats(a.profile)


def rounds(a, cfg, registry, res, cpus):
    transport = InProcessTransport(cfg)
    worker = new_worker(a, transport, registry)
    worker.start()
    engine = Engine(transport)
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


def report(a, res, cpus):
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
