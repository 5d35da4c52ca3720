// The worker: registers, long-polls for steps of its namespaces and
// handlers, runs at most `concurrency` handlers at once, sends their
// completions with the next poll (or at once, in a poll that takes nothing,
// while a long poll waits), heartbeats the steps it holds, re-registers and
// reconnects with backoff when the server goes away, and stops gracefully.

import { hostname } from "node:os";
import { setTimeout as sleep, setImmediate as yieldTurn } from "node:timers/promises";

import { type Handler, StepContext, toCompletion } from "./handler.js";
import { type CompletionResult, type Registered, type WireCompletion, type WireEvent, HttpError, WireClient } from "./wire.js";

/** Where the worker logs; fields are plain data. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger writing one JSON line per record to stderr, from level on. */
export function stderrLogger(level: "debug" | "info" | "warn" | "error" = "info"): Logger {
  const order = ["debug", "info", "warn", "error"];
  const min = order.indexOf(level);
  const at = (lvl: string) => (msg: string, fields?: Record<string, unknown>) => {
    if (order.indexOf(lvl) < min) return;
    process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }) + "\n");
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

export interface WorkerOptions {
  /** Base URL of `tasker serve`. */
  server: string;
  /** Namespaces whose steps this worker runs. */
  namespaces: string[];
  /** The handlers it runs (stepHandler values, or asHandler of StepHandler classes). */
  handlers: Handler[];
  /** Unique among the live workers; default host-pid-random. */
  workerId?: string;
  /** Handlers running at once (default 10). */
  concurrency?: number;
  /** Longest wait of one poll, in ms (default 10000; the server caps it). */
  pollTimeoutMs?: number;
  /** How long stop() waits for running steps before releasing them (default 30000). */
  shutdownTimeoutMs?: number;
  /** First and longest delay between attempts to reach a server that is away (default 100 and 5000 ms). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  token?: string;
  apiKey?: string;
  logger?: Logger;
}

/** Counters of a worker, for tests and dashboards. */
export interface WorkerStats {
  registrations: number;
  eventsReceived: number;
  completionsAccepted: number;
  completionsRefused: number;
  handlerFailures: number;
  reconnects: number;
}

export class Worker {
  readonly workerId: string;
  readonly stats: WorkerStats = { registrations: 0, eventsReceived: 0, completionsAccepted: 0, completionsRefused: 0, handlerFailures: 0, reconnects: 0 };
  private readonly client: WireClient;
  private readonly handlers = new Map<string, Handler>();
  private readonly namespaces: string[];
  private readonly concurrency: number;
  private readonly pollTimeoutMs: number;
  private readonly shutdownTimeoutMs: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly log: Logger;

  private readonly running = new Map<string, Promise<void>>();
  private outbox: WireCompletion[] = [];
  // Completions sent in a call that failed or was aborted: the server may
  // have applied them, so a "conflict" when they are sent again is expected.
  private readonly uncertain = new Set<string>();
  private registered: Registered | null = null;
  private longPolling = false;
  private flushing = false;
  private stopping = false;
  private readonly stopCtl = new AbortController(); // aborts polls and waits
  private readonly hardCtl = new AbortController(); // aborts handlers (their context.signal)
  private wake: (() => void) | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private runPromise: Promise<void> | null = null;

  constructor(opts: WorkerOptions) {
    if (!Array.isArray(opts.namespaces) || opts.namespaces.length === 0 || opts.namespaces.some((n) => typeof n !== "string" || n === "")) {
      throw new TypeError("Worker needs namespaces: the namespaces whose steps it runs, e.g. ['payments']");
    }
    if (!Array.isArray(opts.handlers) || opts.handlers.length === 0) {
      throw new TypeError("Worker needs handlers: stepHandler(...) values or StepHandler classes (through asHandler)");
    }
    for (const h of opts.handlers) {
      if (this.handlers.has(h.handlerName)) throw new TypeError(`two handlers are named ${JSON.stringify(h.handlerName)}: handler names are unique`);
      this.handlers.set(h.handlerName, h);
    }
    const conc = opts.concurrency ?? 10;
    if (!Number.isInteger(conc) || conc < 1 || conc > 1000) throw new RangeError(`concurrency ${conc}: give the steps run at once, 1 to 1000`);
    this.concurrency = conc;
    this.namespaces = [...opts.namespaces];
    this.workerId = opts.workerId ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.pollTimeoutMs = opts.pollTimeoutMs ?? 10_000;
    this.shutdownTimeoutMs = opts.shutdownTimeoutMs ?? 30_000;
    this.backoffInitialMs = opts.backoffInitialMs ?? 100;
    this.backoffMaxMs = opts.backoffMaxMs ?? 5_000;
    this.log = opts.logger ?? stderrLogger();
    this.client = new WireClient({ server: opts.server, token: opts.token, apiKey: opts.apiKey });
  }

  /** Steps running now. */
  get inFlight(): number {
    return this.running.size;
  }

  /** Runs until stop(); resolves once stopped (steps finished or released, deregistered). */
  run(): Promise<void> {
    this.runPromise ??= this.loop();
    return this.runPromise;
  }

  /**
   * Stops: no more polls; running steps get shutdownTimeoutMs to finish
   * (their completions are sent), then the rest are released to the server
   * (they fail as retryable and run again elsewhere). hard: release at once.
   */
  async stop(opts: { hard?: boolean } = {}): Promise<void> {
    if (!this.stopping) this.log.info("worker stopping", { worker_id: this.workerId, running: this.running.size, hard: !!opts.hard });
    this.stopping = true;
    if (opts.hard) this.hardCtl.abort(new Error("the worker is stopping"));
    this.stopCtl.abort(new Error("the worker is stopping"));
    this.notify();
    await this.runPromise;
  }

  private async loop(): Promise<void> {
    let backoff = this.backoffInitialMs;
    while (!this.stopping) {
      try {
        if (!this.registered) await this.register();
        const free = this.concurrency - this.running.size;
        if (free <= 0) {
          await this.waitForChange();
          continue;
        }
        await yieldTurn(); // handlers that are about to finish ride along
        const completions = this.takeOutbox();
        this.longPolling = true;
        let resp;
        try {
          resp = await this.client.poll(this.workerId, free, Math.min(this.pollTimeoutMs, this.registered!.max_poll_timeout_ms), completions, this.stopCtl.signal);
        } catch (err) {
          this.requeue(completions); // sent again: an applied one is answered conflict
          throw err;
        } finally {
          this.longPolling = false;
        }
        this.onResults(resp.completions);
        for (const ev of resp.events) this.start(ev);
        backoff = this.backoffInitialMs;
      } catch (err) {
        if (this.stopping) break;
        if (err instanceof HttpError && err.status === 413) {
          // A completion is over the server's body limit: send them one by
          // one, so that only the too-large ones fail.
          await this.deliverOneByOne().catch((e2) => this.log.warn("sending completions one by one failed; retrying", { error: String(e2) }));
          continue;
        }
        if (err instanceof HttpError && err.status === 404) {
          this.log.warn("the server does not know this worker (it restarted, or the registration expired): registering again", { worker_id: this.workerId });
          this.registered = null;
          continue;
        }
        this.stats.reconnects++;
        this.log.warn("the server is unreachable or failed; retrying", { worker_id: this.workerId, error: String(err instanceof Error ? err.message : err), retry_in_ms: backoff });
        this.registered = null; // register again: the server may have restarted
        await this.pause(backoff * (0.5 + Math.random() / 2));
        backoff = Math.min(backoff * 2, this.backoffMaxMs);
      }
    }
    await this.shutdown();
  }

  private async register(): Promise<void> {
    this.registered = await this.client.register(this.workerId, this.namespaces, [...this.handlers.keys()], this.concurrency, this.stopCtl.signal);
    this.stats.registrations++;
    this.log.info("worker registered", { worker_id: this.workerId, server: this.client.base, namespaces: this.namespaces, handlers: [...this.handlers.keys()], concurrency: this.concurrency });
    this.startHeartbeat(Math.max(100, Math.floor(Math.min(this.registered.complete_timeout_ms, this.registered.registration_ttl_ms) / 3)));
  }

  private start(ev: WireEvent): void {
    this.stats.eventsReceived++;
    const h = this.handlers.get(ev.handler_name);
    const p = (async () => {
      let c: WireCompletion;
      if (!h) {
        c = { event_id: ev.event_id, outcome: "failure", error: { message: `worker ${this.workerId} has no handler ${JSON.stringify(ev.handler_name)}`, error_type: "handler_not_found", retryable: true } };
      } else {
        try {
          c = toCompletion(ev.event_id, await h.run(new StepContext(ev, this.hardCtl.signal)));
        } catch (error) {
          c = toCompletion(ev.event_id, undefined, { error });
        }
      }
      if (c.outcome === "failure") this.stats.handlerFailures++;
      this.outbox.push(c);
    })().finally(() => {
      this.running.delete(ev.event_id);
      this.notify();
      if (this.longPolling) void this.flush();
    });
    this.running.set(ev.event_id, p);
  }

  /** Sends the waiting completions now, in a poll that takes nothing. */
  private async flush(): Promise<void> {
    if (this.flushing || !this.registered) return;
    this.flushing = true;
    try {
      while (this.outbox.length > 0 && this.registered) {
        const completions = this.takeOutbox();
        try {
          const resp = await this.client.poll(this.workerId, 0, 0, completions);
          this.onResults(resp.completions);
        } catch (err) {
          this.requeue(completions); // the main loop delivers them
          this.log.debug("flushing completions failed; they go with the next poll", { error: String(err) });
          return;
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Sends the waiting completions on the complete route, one at a time. */
  private async deliverOneByOne(): Promise<void> {
    const batch = this.takeOutbox();
    for (let i = 0; i < batch.length; i++) {
      const c = batch[i]!;
      try {
        this.onResults([await this.client.complete(this.workerId, c, this.stopCtl.signal)]);
      } catch (err) {
        if (err instanceof HttpError && err.status === 413) {
          this.log.error("a step's completion is larger than the server accepts; failing the step", { event_id: c.event_id, error: err.message });
          this.outbox.push({ event_id: c.event_id, outcome: "failure", error: { message: `the step's result is larger than the server accepts (--max-body-bytes): ${err.message}`, error_type: "result_too_large", retryable: false } });
        } else if (err instanceof HttpError && (err.status === 409 || (err.status === 404 && err.message.includes("event")))) {
          this.onResults([{ event_id: c.event_id, status: err.status === 409 ? "conflict" : "not_found", message: err.message }]);
        } else {
          this.requeue(batch.slice(i));
          throw err;
        }
      }
    }
  }

  private onResults(results: CompletionResult[]): void {
    for (const r of results) {
      const resent = this.uncertain.delete(r.event_id);
      if (r.status === "accepted") {
        this.stats.completionsAccepted++;
        continue;
      }
      if (!(resent && r.status === "conflict")) this.stats.completionsRefused++;
      if (r.status === "invalid") {
        // The handler returned something the server refuses (say a
        // checkpoint from a step that is no batch worker): the step still
        // gets a result, a permanent failure saying why.
        this.log.error("the server refused a completion as invalid; failing the step", { event_id: r.event_id, message: r.message });
        if (r.event_id) this.outbox.push({ event_id: r.event_id, outcome: "failure", error: { message: `the worker's completion was refused: ${r.message ?? "invalid"}`, error_type: "invalid_result", retryable: false } });
      } else if (resent && r.status === "conflict") {
        this.log.debug("a completion sent again had been applied already", { event_id: r.event_id });
      } else {
        this.log.warn("a completion was not applied", { event_id: r.event_id, status: r.status, message: r.message });
      }
    }
  }

  private startHeartbeat(everyMs: number): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), everyMs);
    this.heartbeatTimer.unref();
  }

  private async heartbeat(): Promise<void> {
    if (!this.registered || this.running.size === 0) return; // polls keep an idle worker registered
    try {
      const r = await this.client.heartbeat(this.workerId, [...this.running.keys()]);
      if (r.lost.length > 0) this.log.warn("steps this worker runs are no longer its own (timed out or released); their completions will be refused", { lost: r.lost });
    } catch (err) {
      if (err instanceof HttpError && err.status === 404) this.registered = null;
      this.log.debug("heartbeat failed", { error: String(err) });
    }
  }

  private async shutdown(): Promise<void> {
    if (this.running.size > 0) {
      this.log.info("waiting for running steps", { running: this.running.size, timeout_ms: this.shutdownTimeoutMs });
      const t = sleep(this.shutdownTimeoutMs, undefined, { ref: false }).then(() => "timeout" as const);
      if ((await Promise.race([Promise.allSettled(this.running.values()), t])) === "timeout") {
        this.log.warn("steps still running at the shutdown timeout are released", { running: this.running.size });
        this.hardCtl.abort(new Error("the worker's shutdown timeout passed"));
      }
    }
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.registered) {
      const stillRunning = this.running.size;
      for (let i = 0; i < 3 && this.outbox.length > 0; i++) {
        const completions = this.takeOutbox();
        try {
          this.onResults((await this.client.poll(this.workerId, 0, 0, completions)).completions);
        } catch (err) {
          this.requeue(completions);
          this.log.warn("sending the last completions failed", { error: String(err), left: this.outbox.length });
          await sleep(this.backoffInitialMs);
        }
      }
      try {
        const d = await this.client.deregister(this.workerId);
        this.log.info("worker deregistered", { worker_id: this.workerId, released: d.released, still_running: stillRunning });
      } catch (err) {
        this.log.warn("deregistering failed: the server releases this worker's steps at their timeout", { error: String(err) });
      }
    }
    this.registered = null;
  }

  private requeue(completions: WireCompletion[]): void {
    for (const c of completions) this.uncertain.add(c.event_id);
    this.outbox.unshift(...completions);
  }

  private takeOutbox(): WireCompletion[] {
    const c = this.outbox;
    this.outbox = [];
    return c;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private waitForChange(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopping) return resolve();
      this.wake = resolve;
    });
  }

  private async pause(ms: number): Promise<void> {
    try {
      await sleep(ms, undefined, { signal: this.stopCtl.signal });
    } catch {
      // stopped
    }
  }
}
