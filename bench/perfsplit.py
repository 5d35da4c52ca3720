"""Splits the samples of a `perf record -g` of an in-process run by where
they come from, in µs per step, so that two runs (Python handlers, Go
handlers) can be compared part by part (docs/benchmarks.md, "Push workers").

    perf record -e cpu-clock -g -F 2000 -o py.data -- python3 sdk/python/bench/inprocess.py \\
        --shapes linear --kinds py --tasks 3000 --rounds 1 --latency-tasks 1 [--push --concurrency 2]
    python3 bench/perfsplit.py py.data 12000 go.data    # 3000 four-step tasks: 12000 steps

A sample goes to the first frame of its stack, from the leaf, that is in
the Python interpreter (Python), or that names one of ours (the poll route,
the push loop, the store's transactions...); else to its library. "K:"
marks samples taken in the kernel. Each sample is 1/F s (F = 2000 above).
"""
import collections
import subprocess
import sys

RULES = [("pushLoop", "push loop"), ("pushHeartbeat", "push heartbeat"), ("PollWorkerEvents", "poll route"),
         ("CreateTask", "create"), ("GetTask", "reads"), ("ListTasks", "reads"), ("Host).Call", "call other"),
         ("transition.InTx", "store tx"), ("gcBgMarkWorker", "gc"), ("runtime.sysmon", "sysmon"),
         ("runtime.mcall", "scheduler"), ("runtime.morestack", "scheduler"), ("dispatch", "dispatch"),
         ("worker.(*Worker)", "worker"), ("group.(*Committer", "committer")]


def stacks(path):
    p = subprocess.Popen(["perf", "script", "-i", path, "-F", "ip,sym,dso"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    cur = []
    for line in p.stdout:
        line = line.strip()
        if not line:
            if cur:
                yield cur
            cur = []
            continue
        parts = line.split(None, 1)
        if len(parts) == 2:
            rest = parts[1]
            i = rest.rfind(" (")
            cur.append((rest[:i], rest[i + 2:-1]) if i >= 0 else (rest, ""))
    if cur:
        yield cur


def is_python(dso):
    return "libpython" in dso or "cpython" in dso or "_ctypes" in dso


def classify(frames):
    k = "K:" if frames and "kernel" in frames[0][1] else ""
    for sym, dso in frames:
        # Python called from Go (a push worker's step function) is Python,
        # as Python is when nothing of ours is on the stack.
        if is_python(dso):
            return k + "python"
        for pat, name in RULES:
            if pat in sym:
                return k + name
    return k + "other: " + (frames[-1][1].rsplit("/", 1)[-1] if frames else "?")


def split(path, steps, hz):
    c = collections.Counter(classify(f) for f in stacks(path))
    return {k: v * 1e6 / hz / steps for k, v in c.items()}


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: perfsplit.py PERF_DATA STEPS [BASE_PERF_DATA] [--hz 2000]")
    hz = 2000
    args = [a for a in sys.argv[1:]]
    if "--hz" in args:
        i = args.index("--hz")
        hz = int(args[i + 1])
        del args[i:i + 2]
    steps = float(args[1])
    a = split(args[0], steps, hz)
    b = split(args[2], steps, hz) if len(args) > 2 else {}
    keys = sorted(set(a) | set(b), key=lambda k: -(a.get(k, 0) - b.get(k, 0)))
    print(f"{'part':40s} {'run':>8s}" + (f" {'base':>8s} {'diff':>8s}" if b else "") + "   (µs per step)")
    for k in keys:
        x, y = a.get(k, 0), b.get(k, 0)
        if max(x, y) >= 1:
            print(f"{k:40s} {x:8.1f}" + (f" {y:8.1f} {x - y:+8.1f}" if b else ""))
    print(f"{'total':40s} {sum(a.values()):8.1f}" + (f" {sum(b.values()):8.1f} {sum(a.values()) - sum(b.values()):+8.1f}" if b else ""))


if __name__ == "__main__":
    main()
