"""Drives libtasker.so through ctypes as a Python host would.

Usage: python3 smoke.py LIBTASKER_SO WORKDIR. Exits non-zero with a message
on the first check that fails.
"""
import ctypes
import json
import os
import sys
import threading
import time

lib = ctypes.CDLL(sys.argv[1])
work = sys.argv[2]
for name, args in [("tasker_open", [ctypes.c_char_p]),
                   ("tasker_call", [ctypes.c_longlong, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]),
                   ("tasker_cleanup_timeouts", [ctypes.c_longlong]),
                   ("tasker_stop", [ctypes.c_longlong, ctypes.c_longlong])]:
    fn = getattr(lib, name)
    fn.argtypes = args
    fn.restype = ctypes.c_void_p  # freed with tasker_free
lib.tasker_free.argtypes = [ctypes.c_void_p]
lib.tasker_free.restype = None
STEP_FN = ctypes.CFUNCTYPE(None, ctypes.c_ulonglong, ctypes.c_void_p, ctypes.c_size_t)
lib.tasker_serve.argtypes = [ctypes.c_longlong, ctypes.c_char_p, STEP_FN]
lib.tasker_serve.restype = ctypes.c_void_p
lib.tasker_step_result.argtypes = [ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_size_t]
lib.tasker_step_result.restype = None


def take(ptr):
    try:
        return json.loads(ctypes.string_at(ptr).decode())
    finally:
        lib.tasker_free(ptr)


def call(h, method, path, body=None):
    raw = None if body is None else json.dumps(body).encode()
    r = take(lib.tasker_call(h, method.encode(), path.encode(), raw))
    if "error" in r:
        sys.exit("%s %s: %s" % (method, path, r["error"]))
    return r["status"], r["body"]


def check(cond, msg):
    if not cond:
        sys.exit(msg)


TEMPLATE = """name: pair
namespace: ffi
version: 1.0.0
steps:
  - {name: double, handler: ffi.double}
  - {name: add_one, handler: ffi.add_one, depends_on: [double]}
"""
with open(os.path.join(work, "pair.yaml"), "w") as f:
    f.write(TEMPLATE)

# Bad input is an error value, never a crash.
for bad in [b"{", b'{"no_such_field": 1}', b'{"templates": ["/does/not/exist"]}']:
    r = take(lib.tasker_open(bad))
    check("error" in r and r["error"]["message"], "open(%r) answered %r, want an error" % (bad, r))
r = take(lib.tasker_call(12345, b"GET", b"/health", None))
check(r.get("error", {}).get("kind") == "unknown_handle", "unknown handle answered %r" % r)

cfg = {"database_path": os.path.join(work, "t.db"), "templates": [work], "complete_timeout_ms": 3000}
h = take(lib.tasker_open(json.dumps(cfg).encode()))["handle"]
status, _ = call(h, "POST", "/v1/workers", {"worker_id": "py", "namespaces": ["ffi"],
                                          "handlers": ["ffi.double", "ffi.add_one"], "concurrency": 4})
check(status in (200, 201), "register: %d" % status)

# Ten tasks, completed by four host threads that poll and complete at once.
tasks = []
for i in range(10):
    status, body = call(h, "POST", "/v1/tasks", {"namespace": "ffi", "name": "pair", "version": "1.0.0",
                                                "context": {"n": i}, "initiator": "smoke", "source_system": "py",
                                                "reason": "test", "tags": []})
    check(status in (200, 201), "create: %d %r" % (status, body))
    tasks.append((body["task_uuid"], i))

errors = []


def worker():
    deadline = time.time() + 20
    while time.time() < deadline:
        status, body = call(h, "POST", "/v1/workers/py/poll", {"max_events": 2, "timeout_ms": 200})
        if status != 200:
            errors.append("poll: %d %r" % (status, body))
            return
        for ev in body["events"]:
            if ev["handler_name"] == "ffi.double":
                out = {"value": ev["task_context"]["n"] * 2}
            else:
                out = {"value": ev["dependency_results"]["double"]["value"] + 1}
            st, b = call(h, "POST", "/v1/workers/py/events/%s/complete" % ev["event_id"],
                         {"outcome": "success", "result": out})
            if st != 200:
                errors.append("complete: %d %r" % (st, b))
        if all_done():
            return


def all_done():
    for tid, _ in tasks:
        _, body = call(h, "GET", "/v1/tasks/" + tid)
        if body.get("status") != "complete":
            return False
    return True


threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check(not errors, "worker errors: %r" % errors)
check(all_done(), "not every task completed")
for tid, n in tasks:
    _, steps = call(h, "GET", "/v1/tasks/%s/workflow_steps" % tid)
    last = [s for s in steps if s["name"] == "add_one"][0]
    check((last.get("results") or {}).get("value") == 2 * n + 1, "task %s: step add_one %r, want value %d" % (tid, last, 2 * n + 1))

# A push worker: the engine calls this function on its own threads with a
# JSON array of events; it answers with tasker_step_result before it returns.
pushed = []


def on_step(token, ptr, n):
    done = []
    for ev in json.loads(ctypes.string_at(ptr, n)):
        pushed.append(ev["event_id"])
        if ev["handler_name"] == "ffi.double":
            out = {"value": ev["task_context"]["n"] * 2}
        else:
            out = {"value": ev["dependency_results"]["double"]["value"] + 1}
        done.append({"outcome": "success", "result": out})
    raw = json.dumps(done).encode()
    lib.tasker_step_result(token, raw, len(raw))


fn = STEP_FN(on_step)
r = take(lib.tasker_serve(h, json.dumps({"worker_id": "push", "namespaces": ["ffi"],
                                          "handlers": ["ffi.double", "ffi.add_one"]}).encode(), fn))
check(r.get("worker_id") == "push", "serve answered %r" % r)
r = take(lib.tasker_serve(h, b'{"worker_id": "x", "concurrency": -1}', fn))
check("error" in r, "serve with concurrency -1 answered %r" % r)
r = take(lib.tasker_serve(h, b'{"worker_id": "y", "namespaces": ["ffi"], "handlers": ["ffi.double"]}',
                          ctypes.cast(None, STEP_FN)))
check(r.get("error", {}).get("kind") == "invalid_input", "serve without a function answered %r" % r)
# A token no call holds (stale or made up) is ignored, not a crash.
lib.tasker_step_result(987654321, b"[]", 2)
pushed_tasks = []
for i in range(5):
    status, body = call(h, "POST", "/v1/tasks", {"namespace": "ffi", "name": "pair", "version": "1.0.0",
                                                "context": {"n": 100 + i}, "initiator": "smoke",
                                                "source_system": "py", "reason": "test", "tags": []})
    pushed_tasks.append((body["task_uuid"], 100 + i))
deadline = time.time() + 20
while time.time() < deadline:
    if all(call(h, "GET", "/v1/tasks/" + tid)[1].get("status") == "complete" for tid, _ in pushed_tasks):
        break
    time.sleep(0.05)
for tid, n in pushed_tasks:
    _, steps = call(h, "GET", "/v1/tasks/%s/workflow_steps" % tid)
    last = [s for s in steps if s["name"] == "add_one"][0]
    check((last.get("results") or {}).get("value") == 2 * n + 1, "pushed task %s: %r" % (tid, last))
check(len(pushed) == 10, "the push worker ran %d events, want 10" % len(pushed))

# What the C wrapper makes of a step function that gives no completions,
# NULL, or more than max_body_bytes: each step fails, saying so.
once_dir = os.path.join(work, "once")
os.makedirs(once_dir)
with open(os.path.join(once_dir, "once.yaml"), "w") as f:
    f.write("name: once\nnamespace: ffi_once\nversion: 1.0.0\nsteps:\n"
            "  - {name: only, handler: ffi.once, retry: {max_attempts: 1}}\n")
h2 = take(lib.tasker_open(json.dumps({"database_path": os.path.join(work, "t2.db"), "templates": [once_dir],
                                      "max_body_bytes": 2048}).encode()))["handle"]


def misbehave(token, ptr, n):
    mode = json.loads(ctypes.string_at(ptr, n))[0]["task_context"]["mode"]
    if mode == "null":
        lib.tasker_step_result(token, None, 0)
    elif mode == "big":
        raw = json.dumps([{"outcome": "success", "result": {"pad": "x" * 3000}}]).encode()
        lib.tasker_step_result(token, raw, len(raw))
    # "none": no tasker_step_result at all


fn2 = STEP_FN(misbehave)
r = take(lib.tasker_serve(h2, b'{"worker_id": "bad", "namespaces": ["ffi_once"], "handlers": ["ffi.once"]}', fn2))
check(r.get("worker_id") == "bad", "serve answered %r" % r)
for mode, want in [("none", "gave no completions"), ("null", "no completions (NULL)"),
                   ("big", "more than the engine's body limit of 2048")]:
    status, body = call(h2, "POST", "/v1/tasks", {"namespace": "ffi_once", "name": "once", "version": "1.0.0",
                                                 "context": {"mode": mode}, "initiator": "smoke",
                                                 "source_system": "py", "reason": "test", "tags": []})
    tid = body["task_uuid"]
    deadline = time.time() + 20
    while call(h2, "GET", "/v1/tasks/" + tid)[1].get("status") != "error":
        check(time.time() < deadline, "mode %s: the task did not fail" % mode)
        time.sleep(0.05)
    dlq = json.dumps(call(h2, "GET", "/v1/dlq/task/" + tid)[1])
    check(want in dlq and "host_error" in dlq, "mode %s: the failure does not say %r: %s" % (mode, want, dlq))
r = take(lib.tasker_stop(h2, 10000))
check(r.get("stopped") is True, "stop answered %r" % r)

r = take(lib.tasker_cleanup_timeouts(h))
check("expired" in r, "cleanup answered %r" % r)
r = take(lib.tasker_stop(h, 10000))
check(r.get("stopped") is True, "stop answered %r" % r)
r = take(lib.tasker_stop(h, 10000))
check(r.get("error", {}).get("kind") == "unknown_handle", "second stop answered %r" % r)
print("ok")
