"""python3 -m tasker_worker --server URL --namespace NS [--namespace NS2 ...] --handlers DIR

or, with the engine in this process through libtasker (docs/libtasker.md):
python3 -m tasker_worker --in-process --config FILE [--lib libtasker.so] [--push] --namespace NS --handlers DIR"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading

from tasker_core.handler import HandlerRegistry

from .discovery import load_handlers
from .runtime import Worker
from .transport import HTTPTransport, TransportError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m tasker_worker",
                                description="Run tasker-core style Python handlers for tasker serve (docs/workers.md).")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="URL of tasker serve's API, e.g. http://127.0.0.1:8080")
    where.add_argument("--in-process", action="store_true",
                       help="embed the engine in this process through libtasker (needs --config)")
    p.add_argument("--config", help="with --in-process: tasker_open's JSON config file (docs/libtasker.md)")
    p.add_argument("--lib", default=None, help="with --in-process: libtasker.so (default $TASKER_LIB, ./libtasker.so)")
    p.add_argument("--push", action="store_true",
                   help="with --in-process: the engine calls the handlers on its own threads (tasker_serve) "
                        "instead of this process's threads polling for steps; --concurrency is then the calls "
                        "at once (default 2, which suits CPU-light handlers; docs/libtasker.md)")
    p.add_argument("--namespace", "-n", action="append", required=True, help="namespace to serve (repeatable)")
    p.add_argument("--handlers", required=True, help="the handlers' package directory; every module is imported")
    p.add_argument("--handler", action="append", default=[], metavar="CALLABLE",
                   help="also serve this template handler.callable, resolved as tasker-core does: a registered "
                        "name, or module.path.ClassName imported (repeatable)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="steps run at once (threads; default $TASKER_WORKER_CONCURRENCY, else 16); with --push, "
                        "the engine's calls at once (default 2)")
    p.add_argument("--pollers", type=int, default=None,
                   help="idle threads that may wait in a long poll at once; the others wait in Python "
                        "(default: every thread over HTTP, 2 in process)")
    p.add_argument("--completion-wait-ms", type=int, default=None,
                   help="how long a poll carrying a completion waits for the next step (default 20): the "
                        "successor of the step just completed comes a moment later, without a long poll of its own")
    p.add_argument("--batch", type=int, default=None,
                   help="events a thread whose handlers run under 1 ms asks for at once and runs in turn "
                        "(default: 1 over HTTP, 8 in process)")
    p.add_argument("--worker-id", default=None, help="default: host-pid")
    p.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="seconds a stop waits for running steps before releasing them (default 30)")
    p.add_argument("--log-level", default=os.environ.get("TASKER_LOG_LEVEL", "INFO"))
    a = p.parse_args(argv)
    if a.concurrency is None:
        # $TASKER_WORKER_CONCURRENCY is the polling threads' (a push
        # worker's calls want far fewer: 2 for CPU-light handlers).
        env = os.environ.get("TASKER_WORKER_CONCURRENCY")
        a.concurrency = 2 if a.push else (int(env) if env else 16)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = HandlerRegistry.instance()
    try:
        if a.push and not a.in_process:
            raise ValueError("--push needs --in-process: over HTTP the worker polls")
        if a.push and (a.pollers is not None or a.completion_wait_ms is not None or a.batch is not None):
            raise ValueError("--pollers, --completion-wait-ms and --batch are for polling threads: with --push the "
                             "engine calls the handlers, one step a call, and nothing polls")
        n = load_handlers(a.handlers, registry)
        names = registry.list_handlers()
        for callable_ in a.handler:
            if registry.resolve_class(callable_) is None:
                raise ValueError(f"--handler {callable_}: neither a registered handler_name nor an importable "
                                 f"module.path.ClassName")
            if callable_ not in names:
                names.append(callable_)
        if a.in_process:
            if not a.config:
                raise ValueError("--in-process needs --config FILE: the engine's JSON config (docs/libtasker.md)")
            from .inprocess import InProcessTransport
            with open(a.config) as f:
                transport = InProcessTransport(json.load(f), lib_path=a.lib)
        else:
            transport = HTTPTransport(a.server)
        if a.push:
            from .inprocess import PushWorker
            w = PushWorker(transport, registry, a.namespace, concurrency=a.concurrency, worker_id=a.worker_id,
                           handlers=names, shutdown_timeout=a.shutdown_timeout)
        else:
            w = Worker(transport, registry, a.namespace, concurrency=a.concurrency,
                       worker_id=a.worker_id, shutdown_timeout=a.shutdown_timeout, handlers=names,
                       pollers=a.pollers, batch=a.batch,
                       **({} if a.completion_wait_ms is None else {"completion_wait_ms": a.completion_wait_ms}))
    except (ValueError, ImportError, OSError, TransportError) as exc:
        print(f"tasker_worker: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("tasker_worker").info("%d handlers from %s", n, a.handlers)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        w.start()
    except (ValueError, TransportError) as exc:
        print(f"tasker_worker: {exc}", file=sys.stderr)
        transport.close()
        return 2
    print(f"tasker_worker: {w.worker_id} running for {', '.join(a.namespace)} against {a.server or 'the engine in this process'}; "
          f"stop with SIGTERM", file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    w.stop()
    print(f"tasker_worker: stopped ({w.completed} steps completed)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
