// The wire layer: every HTTP call of the pull-worker protocol
// (docs/workers.md, api/openapi.yaml paths /v1/workers*) and the JSON shapes
// it sends and receives. A change of the protocol is an edit of this module
// only; the rest of the SDK speaks in the types exported here.

/** JSON value, as parsed by JSON.parse. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What POST /v1/workers answers. */
export interface Registered {
  worker_id: string;
  max_poll_timeout_ms: number;
  complete_timeout_ms: number;
  registration_ttl_ms: number;
}

/** One step handed to a worker by a poll. */
export interface WireEvent {
  event_id: string;
  task_uuid: string;
  step_uuid: string;
  attempt_id?: string;
  step_name: string;
  namespace: string;
  handler_name: string;
  handler_method?: string;
  initialization?: Json;
  task_context: Json;
  dependency_results: Record<string, Json>;
  attempt: number;
  max_attempts: number;
  batch?: Json;
  checkpoint?: Json;
  dispatched_at: string;
}

/** A step's failure on the wire. */
export interface WireStepError {
  message: string;
  error_type?: string;
  retryable?: boolean;
  retry_after_seconds?: number;
  metadata?: Record<string, Json>;
}

/** A checkpoint yield on the wire. */
export interface WireCheckpoint {
  cursor: Json;
  items_processed?: number;
  accumulated_results?: Json;
}

/** The completion of one event. */
export type WireCompletion =
  | { event_id: string; outcome: "success"; result: Json }
  | { event_id: string; outcome: "failure"; error: WireStepError }
  | { event_id: string; outcome: "checkpoint_yield"; checkpoint: WireCheckpoint };

/** The server's answer to one completion. */
export interface CompletionResult {
  event_id: string;
  status: "accepted" | "not_found" | "conflict" | "invalid";
  message?: string;
}

export interface PollResponse {
  events: WireEvent[];
  completions: CompletionResult[];
}

export interface HeartbeatResult {
  worker_id: string;
  extended: number;
  lost: string[];
}

export interface Deregistered {
  worker_id: string;
  released: number;
}

/** GET /v1/workers/metrics. */
export interface ChannelMetrics {
  queued: number;
  pending: number;
  in_flight: number;
  capacity: number;
  oldest_pending_age_ms: number;
  starving: number;
  completed: number;
  timed_out: number;
  abandoned: number;
  workers: Array<{
    worker_id: string;
    namespaces: string[];
    handlers: string[];
    concurrency?: number;
    held: number;
    last_seen: string;
  }>;
}

/**
 * An HTTP answer other than 2xx. `status` is the HTTP status; `kind` the
 * key of the server's ApiError ("NotFound", "BadRequest", ...) when it sent one.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
    this.name = "HttpError";
  }
}

/** The server could not be reached (refused, reset, DNS, timeout). */
export class ConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConnectionError";
  }
}

export interface ClientOptions {
  /** Base URL of `tasker serve`, e.g. http://127.0.0.1:8080. */
  server: string;
  /** Sent as `Authorization: Bearer ...` when set. */
  token?: string;
  /** Sent as `X-API-Key` when set. */
  apiKey?: string;
  /** Timeout of a call that does not long-poll, in ms (default 30000). */
  requestTimeoutMs?: number;
}

/** The pull-worker routes of one server, for one worker id. */
export class WireClient {
  readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(opts: ClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.server);
    } catch {
      throw new TypeError(`server ${JSON.stringify(opts.server)} is not a URL: give the address of 'tasker serve', e.g. http://127.0.0.1:8080`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new TypeError(`server ${opts.server}: give an http:// or https:// URL`);
    }
    this.base = u.href.replace(/\/+$/, "");
    this.headers = { "content-type": "application/json", accept: "application/json" };
    if (opts.token) this.headers.authorization = `Bearer ${opts.token}`;
    if (opts.apiKey) this.headers["x-api-key"] = opts.apiKey;
    this.timeoutMs = opts.requestTimeoutMs ?? 30_000;
  }

  register(workerId: string, namespaces: string[], handlers: string[], concurrency: number, signal?: AbortSignal): Promise<Registered> {
    return this.call("POST", "/v1/workers", { worker_id: workerId, namespaces, handlers, concurrency }, signal);
  }

  /**
   * Applies the completions, then waits up to timeoutMs for at most
   * maxEvents events. signal aborts the wait (the server then releases
   * whatever it took for this poll).
   */
  poll(workerId: string, maxEvents: number, timeoutMs: number, completions: WireCompletion[], signal?: AbortSignal): Promise<PollResponse> {
    const body: Record<string, unknown> = { max_events: maxEvents, timeout_ms: timeoutMs };
    if (completions.length > 0) body.completions = completions;
    return this.call("POST", `/v1/workers/${enc(workerId)}/poll`, body, signal, timeoutMs + this.timeoutMs);
  }

  complete(workerId: string, c: WireCompletion, signal?: AbortSignal): Promise<CompletionResult> {
    return this.call("POST", `/v1/workers/${enc(workerId)}/events/${enc(c.event_id)}/complete`, c, signal);
  }

  heartbeat(workerId: string, eventIds?: string[], signal?: AbortSignal): Promise<HeartbeatResult> {
    return this.call("POST", `/v1/workers/${enc(workerId)}/heartbeat`, eventIds ? { event_ids: eventIds } : {}, signal);
  }

  deregister(workerId: string, signal?: AbortSignal): Promise<Deregistered> {
    return this.call("DELETE", `/v1/workers/${enc(workerId)}`, undefined, signal);
  }

  metrics(signal?: AbortSignal): Promise<ChannelMetrics> {
    return this.call("GET", "/v1/workers/metrics", undefined, signal);
  }

  private async call<T>(method: string, path: string, body: unknown, signal?: AbortSignal, timeoutMs = this.timeoutMs): Promise<T> {
    const timeout = AbortSignal.timeout(timeoutMs);
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: this.headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: sig,
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      throw new ConnectionError(`${method} ${this.base}${path}: ${describe(err)}`, { cause: err });
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      throw new ConnectionError(`${method} ${this.base}${path}: reading the answer: ${describe(err)}`, { cause: err });
    }
    if (!res.ok) {
      let kind = "";
      let msg = text.slice(0, 500);
      try {
        const parsed = JSON.parse(text) as Record<string, { message?: string } | string>;
        const k = Object.keys(parsed)[0];
        if (k !== undefined) {
          kind = k;
          const v = parsed[k];
          msg = typeof v === "object" && v && typeof v.message === "string" ? v.message : JSON.stringify(v);
        }
      } catch {
        // not JSON: keep the text
      }
      throw new HttpError(res.status, kind, `${method} ${path}: ${res.status} ${kind || res.statusText}: ${msg}`);
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new HttpError(res.status, "", `${method} ${path}: the answer is not JSON: ${text.slice(0, 200)}`);
    }
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error && cause.message) return `${err.message} (${cause.message})`;
    return err.message;
  }
  return String(err);
}
