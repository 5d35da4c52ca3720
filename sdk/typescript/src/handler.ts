// The handler API: what a step handler receives (StepContext) and returns
// (StepHandlerResult), in the spirit of tasker-core's Python worker API
// (StepHandler with handlerName and call(context), the functional
// stepHandler(name, fn), PermanentError / RetryableError, decision and batch
// outcomes, checkpoint yield). Nothing here knows HTTP: the worker converts
// events and results with toContext / toCompletion.

import type { Json, WireCompletion, WireEvent } from "./wire.js";

/** tasker-core's standard error types (any string is accepted too). */
export const ErrorType = {
  PERMANENT_ERROR: "permanent_error",
  RETRYABLE_ERROR: "retryable_error",
  VALIDATION_ERROR: "validation_error",
  TIMEOUT: "timeout",
  HANDLER_ERROR: "handler_error",
} as const;

/** A batch worker's cursor: start included, end excluded. */
export interface CursorConfig {
  batch_id: string;
  start_cursor: Json;
  end_cursor: Json;
  batch_size: number;
}

/** What a batch worker step gets (null for other steps). */
export interface BatchInputs {
  cursor: CursorConfig;
  batch_metadata: { cursor_field: string; failure_strategy: string };
  is_no_op: boolean;
  template_step_name: string;
  checkpoint?: Checkpoint | null;
}

/** The last checkpoint a batch worker yielded. */
export interface Checkpoint {
  cursor: Json;
  items_processed: number;
  accumulated_results?: Json;
  at?: string;
  yields?: number;
}

/** Options of a failure. */
export interface FailureOptions {
  /** A free string; default "handler_error". */
  errorType?: string;
  /** Default true: the step is retried while attempts remain. */
  retryable?: boolean;
  /** Seconds before the retry, replacing the template's backoff. */
  retryAfter?: number;
  metadata?: Record<string, Json>;
}

/** What a handler returns. Build one with the static methods. */
export class StepHandlerResult {
  private constructor(
    readonly kind: "success" | "failure" | "checkpoint_yield",
    readonly result: Json,
    readonly errorMessage: string | null,
    readonly errorType: string | null,
    readonly retryable: boolean,
    readonly retryAfter: number | null,
    readonly metadata: Record<string, Json>,
  ) {}

  get isSuccess(): boolean {
    return this.kind !== "failure";
  }

  /** The step succeeded with result (a JSON value; default {}). */
  static success(result: unknown = {}, metadata: Record<string, Json> = {}): StepHandlerResult {
    return new StepHandlerResult("success", (result ?? {}) as Json, null, null, true, null, metadata);
  }

  /** The step failed: retried while attempts remain unless retryable is false. */
  static failure(message: string, opts: FailureOptions = {}): StepHandlerResult {
    if (typeof message !== "string" || message === "") {
      throw new TypeError("StepHandlerResult.failure needs a message saying what went wrong");
    }
    if (opts.retryAfter !== undefined && !(Number.isFinite(opts.retryAfter) && opts.retryAfter >= 0)) {
      throw new RangeError(`retryAfter ${opts.retryAfter}: give a delay of 0 seconds or more`);
    }
    return new StepHandlerResult("failure", null, message, opts.errorType ?? ErrorType.HANDLER_ERROR, opts.retryable ?? true, opts.retryAfter ?? null, opts.metadata ?? {});
  }

  /**
   * A decision step's result that creates the named steps of the template
   * (tasker-core's decision_success / route_to_steps).
   */
  static decision(stepNames: string[], routingContext: Record<string, Json> = {}, extra: Record<string, Json> = {}): StepHandlerResult {
    if (!Array.isArray(stepNames) || stepNames.length === 0) {
      throw new TypeError("StepHandlerResult.decision needs the names of the steps to create; to create none use StepHandlerResult.noBranches(reason)");
    }
    const r: Record<string, Json> = { ...extra, decision_point_outcome: { type: "create_steps", step_names: [...stepNames] } };
    if (Object.keys(routingContext).length > 0) r.routing_context = routingContext;
    return StepHandlerResult.success(r);
  }

  /** A decision step's result that creates no branch (tasker-core's skip_branches). */
  static noBranches(reason: string, routingContext: Record<string, Json> = {}): StepHandlerResult {
    const r: Record<string, Json> = { decision_point_outcome: { type: "no_branches" }, reason };
    if (Object.keys(routingContext).length > 0) r.routing_context = routingContext;
    return StepHandlerResult.success(r);
  }

  /**
   * A batchable step's result: one batch worker per cursor config, copies of
   * the batch_worker step workerTemplateName (tasker-core's
   * batch_analyzer_success). No cursors means no batches.
   */
  static batches(workerTemplateName: string, cursorConfigs: CursorConfig[], opts: { totalItems?: number; extra?: Record<string, Json> } = {}): StepHandlerResult {
    if (cursorConfigs.length === 0) return StepHandlerResult.noBatches("empty_dataset", opts.extra);
    const total = opts.totalItems ?? 0;
    const outcome: Record<string, Json> = {
      type: "create_batches",
      worker_template_name: workerTemplateName,
      worker_count: cursorConfigs.length,
      cursor_configs: cursorConfigs.map((c) => ({ ...c })),
    };
    if (total > 0) outcome.total_items = total;
    return StepHandlerResult.success({ ...opts.extra, batch_processing_outcome: outcome, worker_count: cursorConfigs.length, total_items: total });
  }

  /** A batchable step's result that plans no batch. */
  static noBatches(reason: string, extra: Record<string, Json> = {}): StepHandlerResult {
    return StepHandlerResult.success({ ...extra, batch_processing_outcome: { type: "no_batches" }, reason });
  }

  /**
   * A batch worker stops here: the checkpoint is stored and the step runs
   * again at once, from context.checkpointCursor, without counting an attempt.
   */
  static checkpointYield(cursor: Json, itemsProcessed: number, accumulatedResults?: Json): StepHandlerResult {
    if (cursor === undefined || cursor === null) {
      throw new TypeError("checkpointYield needs a cursor: where the next run starts");
    }
    if (!Number.isInteger(itemsProcessed) || itemsProcessed < 0) {
      throw new RangeError(`itemsProcessed ${itemsProcessed}: the items processed so far, a whole number ≥ 0`);
    }
    const r: Record<string, Json> = { cursor, items_processed: itemsProcessed };
    if (accumulatedResults !== undefined) r.accumulated_results = accumulatedResults;
    return new StepHandlerResult("checkpoint_yield", r, null, null, true, null, {});
  }
}

/**
 * Cursor configs of totalItems items in batches of batchSize: batch ids
 * "001", "002", ...; ranges [start, end) of integers from 0.
 */
export function createCursorConfigs(totalItems: number, batchSize: number): CursorConfig[] {
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new RangeError(`batchSize ${batchSize}: give a whole number above 0`);
  if (!Number.isInteger(totalItems) || totalItems < 0) throw new RangeError(`totalItems ${totalItems}: give a whole number ≥ 0`);
  const out: CursorConfig[] = [];
  for (let start = 0, i = 1; start < totalItems; start += batchSize, i++) {
    const end = Math.min(start + batchSize, totalItems);
    out.push({ batch_id: String(i).padStart(3, "0"), start_cursor: start, end_cursor: end, batch_size: end - start });
  }
  return out;
}

/** Options of the error classes. */
export interface TaskerErrorOptions {
  errorType?: string;
  retryAfter?: number;
  metadata?: Record<string, Json>;
  cause?: unknown;
}

/** Base of the errors a handler throws to say how its step failed. */
export class TaskerError extends Error {
  readonly retryable: boolean;
  readonly errorType: string | undefined;
  readonly retryAfter: number | undefined;
  readonly metadata: Record<string, Json>;
  constructor(message: string, retryable: boolean, opts: TaskerErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.retryable = retryable;
    this.errorType = opts.errorType;
    this.retryAfter = opts.retryAfter;
    this.metadata = opts.metadata ?? {};
  }
}

/** The step fails for good: no retry. */
export class PermanentError extends TaskerError {
  constructor(message: string, opts: TaskerErrorOptions = {}) {
    super(message, false, opts);
  }
}

/** The step fails and is retried while attempts remain (after retryAfter seconds if given). */
export class RetryableError extends TaskerError {
  constructor(message: string, opts: TaskerErrorOptions = {}) {
    super(message, true, opts);
  }
}

/** What a handler gets: the step's inputs and accessors over them. */
export class StepContext {
  /** The task's context, as given when the task was created. */
  readonly inputData: Record<string, Json>;
  /** Each dependency's result by step name, as its handler returned it. */
  readonly dependencyResults: Record<string, Json>;
  /** The step's handler.initialization from the template ({} for none). */
  readonly stepConfig: Record<string, Json>;
  /** Prior attempts: 0 on the first run. */
  readonly retryCount: number;
  /** The template's retry.max_attempts. */
  readonly maxRetries: number;
  /** For batch workers, their cursor and batch metadata; null otherwise. */
  readonly batch: BatchInputs | null;
  /** The last checkpoint this batch worker yielded, or null. */
  readonly checkpoint: Checkpoint | null;
  /** Aborted when the worker stops without waiting for running steps. */
  readonly signal: AbortSignal;

  constructor(
    /** The raw event, for anything the accessors do not cover. */
    readonly event: WireEvent,
    signal?: AbortSignal,
  ) {
    this.inputData = isObject(event.task_context) ? event.task_context : {};
    this.dependencyResults = isObject(event.dependency_results) ? event.dependency_results : {};
    this.stepConfig = isObject(event.initialization) ? event.initialization : {};
    this.retryCount = Math.max(0, event.attempt - 1);
    this.maxRetries = event.max_attempts;
    this.batch = isObject(event.batch) ? (event.batch as unknown as BatchInputs) : null;
    this.checkpoint = isObject(event.checkpoint) ? (event.checkpoint as unknown as Checkpoint) : null;
    this.signal = signal ?? new AbortController().signal;
  }

  get taskUuid(): string {
    return this.event.task_uuid;
  }
  get stepUuid(): string {
    return this.event.step_uuid;
  }
  get stepName(): string {
    return this.event.step_name;
  }
  get namespace(): string {
    return this.event.namespace;
  }
  get handlerName(): string {
    return this.event.handler_name;
  }
  /** Names this attempt only: the idempotency key for side effects. */
  get attemptId(): string | undefined {
    return this.event.attempt_id;
  }

  /** A top-level key of the task context, or undefined. */
  getInput<T = Json>(key: string): T | undefined {
    return this.inputData[key] as T | undefined;
  }
  /** A top-level key of the task context, or def when it is missing or null. */
  getInputOr<T = Json>(key: string, def: T): T {
    const v = this.inputData[key];
    return v === undefined || v === null ? def : (v as T);
  }
  /** A key of the step's configuration, or undefined. */
  getConfig<T = Json>(key: string): T | undefined {
    return this.stepConfig[key] as T | undefined;
  }
  /** The result of dependency stepName, or undefined if it is none. */
  getDependencyResult<T = Json>(stepName: string): T | undefined {
    return this.dependencyResults[stepName] as T | undefined;
  }
  /** A field of a dependency's result, one key per level; undefined once a level is missing. */
  getDependencyField<T = Json>(stepName: string, ...path: string[]): T | undefined {
    let v: Json | undefined = this.dependencyResults[stepName];
    for (const k of path) {
      if (!isObject(v)) return undefined;
      v = v[k];
    }
    return v as T | undefined;
  }
  getDependencyResultKeys(): string[] {
    return Object.keys(this.dependencyResults);
  }
  /** The non-null results of the dependencies whose names start with prefix (batch workers: "sum_"). */
  getAllDependencyResults<T = Json>(prefix: string): T[] {
    return Object.keys(this.dependencyResults)
      .filter((k) => k.startsWith(prefix))
      .sort()
      .map((k) => this.dependencyResults[k])
      .filter((v) => v !== null && v !== undefined) as T[];
  }
  isRetry(): boolean {
    return this.retryCount > 0;
  }
  isLastRetry(): boolean {
    return this.retryCount >= this.maxRetries - 1;
  }
  get checkpointCursor(): Json | undefined {
    return this.checkpoint?.cursor ?? undefined;
  }
  get checkpointItemsProcessed(): number {
    return this.checkpoint?.items_processed ?? 0;
  }
  get accumulatedResults(): Json | undefined {
    return this.checkpoint?.accumulated_results ?? undefined;
  }
  hasCheckpoint(): boolean {
    return this.checkpointCursor !== undefined;
  }
}

/**
 * A handler's return: a StepHandlerResult, or any other value that
 * JSON.stringify accepts (a success with it as the result; undefined is {}).
 */
export type HandlerReturn = unknown;

/** A class-based handler: set handlerName, implement call. */
export abstract class StepHandler {
  /** The name steps give as their handler (tasker-core's handler.callable). */
  static handlerName = "";
  abstract call(context: StepContext): HandlerReturn | Promise<HandlerReturn>;

  get name(): string {
    return (this.constructor as typeof StepHandler).handlerName || this.constructor.name;
  }
  success(result: unknown = {}, metadata: Record<string, Json> = {}): StepHandlerResult {
    return StepHandlerResult.success(result, metadata);
  }
  failure(message: string, opts: FailureOptions = {}): StepHandlerResult {
    return StepHandlerResult.failure(message, opts);
  }
}

/** A handler as the worker runs it: a name and a function. */
export interface Handler {
  readonly handlerName: string;
  run(context: StepContext): HandlerReturn | Promise<HandlerReturn>;
}

const HANDLER = Symbol.for("tasker.handler");

/** The functional style: stepHandler("ns.name", async (ctx) => ({...})). */
export function stepHandler(name: string, fn: (context: StepContext) => HandlerReturn | Promise<HandlerReturn>): Handler {
  if (typeof name !== "string" || name === "") throw new TypeError("stepHandler needs a handler name, the one the template's steps give");
  if (typeof fn !== "function") throw new TypeError(`stepHandler(${JSON.stringify(name)}) needs a function (context) => result`);
  return { handlerName: name, run: fn, [HANDLER]: true } as Handler;
}

/**
 * The handler a module export stands for: a stepHandler value, or a
 * StepHandler subclass (a fresh instance per step); undefined for anything else.
 */
export function asHandler(v: unknown): Handler | undefined {
  if (typeof v === "object" && v !== null && (v as Record<symbol, unknown>)[HANDLER] === true) return v as Handler;
  if (typeof v === "function" && v.prototype instanceof StepHandler) {
    const cls = v as unknown as (new () => StepHandler) & typeof StepHandler;
    const name = cls.handlerName;
    if (!name) throw new TypeError(`StepHandler class ${cls.name} has no static handlerName: set it to the name the template's steps give`);
    return { handlerName: name, run: (ctx) => new cls().call(ctx) };
  }
  return undefined;
}

/** Converts what a handler returned (or threw) into the event's completion. */
export function toCompletion(eventId: string, ret: HandlerReturn | undefined, thrown?: { error: unknown }): WireCompletion {
  if (thrown) return sendable({ event_id: eventId, outcome: "failure", error: errorOf(thrown.error) });
  if (ret instanceof StepHandlerResult) {
    switch (ret.kind) {
      case "success":
        return sendable({ event_id: eventId, outcome: "success", result: ret.result });
      case "checkpoint_yield": {
        const r = ret.result as { cursor: Json; items_processed: number; accumulated_results?: Json };
        return sendable({ event_id: eventId, outcome: "checkpoint_yield", checkpoint: { ...r } });
      }
      case "failure": {
        const e: { message: string; error_type?: string; retryable: boolean; retry_after_seconds?: number; metadata?: Record<string, Json> } = {
          message: ret.errorMessage ?? "failed",
          error_type: ret.errorType ?? ErrorType.HANDLER_ERROR,
          retryable: ret.retryable,
        };
        if (ret.retryAfter !== null) e.retry_after_seconds = ret.retryAfter;
        if (Object.keys(ret.metadata).length > 0) e.metadata = ret.metadata;
        return sendable({ event_id: eventId, outcome: "failure", error: e });
      }
    }
  }
  if (ret === undefined || ret === null) return { event_id: eventId, outcome: "success", result: {} };
  return sendable({ event_id: eventId, outcome: "success", result: ret as Json });
}

/**
 * Checks that a completion can be sent: its JSON form exists (no BigInt,
 * no cycle). A completion that cannot becomes a permanent failure saying why.
 */
export function sendable(c: WireCompletion): WireCompletion {
  try {
    if (JSON.stringify(c) !== undefined) return c;
  } catch (err) {
    return { event_id: c.event_id, outcome: "failure", error: { message: `the handler's result is not JSON: ${String(err)}`, error_type: "invalid_result", retryable: false } };
  }
  return c;
}

function errorOf(err: unknown) {
  if (err instanceof TaskerError) {
    const e: { message: string; error_type: string; retryable: boolean; retry_after_seconds?: number; metadata?: Record<string, Json> } = {
      message: err.message || err.name,
      error_type: err.errorType ?? err.name,
      retryable: err.retryable,
    };
    if (err.retryAfter !== undefined && err.retryAfter >= 0) e.retry_after_seconds = err.retryAfter;
    if (Object.keys(err.metadata).length > 0) e.metadata = err.metadata;
    return e;
  }
  if (err instanceof Error) {
    return { message: err.message || err.name, error_type: err.name || "Error", retryable: true };
  }
  return { message: `the handler threw ${JSON.stringify(err) ?? String(err)}`, error_type: "handler_error", retryable: true };
}

function isObject(v: unknown): v is Record<string, Json> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
