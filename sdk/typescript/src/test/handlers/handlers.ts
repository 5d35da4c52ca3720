// The handlers of the SDK's tests (test-fixtures/templates), in both
// styles. The CLI test loads this directory with --handlers.

import { renameSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

import {
  type StepContext,
  PermanentError,
  StepHandler,
  StepHandlerResult,
  createCursorConfigs,
  stepHandler,
} from "../../index.js";

/** Runs of each handler in this process, by handler name. */
export const calls = new Map<string, number>();
function count(name: string): void {
  calls.set(name, (calls.get(name) ?? 0) + 1);
}

/** value + addend (config, default 1), value from the context or the first dependency. */
export class AddHandler extends StepHandler {
  static override handlerName = "ts.add";
  call(ctx: StepContext) {
    count("ts.add");
    const deps = ctx.getDependencyResultKeys().sort();
    const dep = deps.find((k) => typeof ctx.getDependencyField(k, "value") === "number");
    const base = dep !== undefined ? ctx.getDependencyField<number>(dep, "value") : ctx.getInput<number>("value");
    if (typeof base !== "number") throw new PermanentError("ts.add needs a number: context {value: n} or a dependency result {value: n}", { errorType: "validation_error" });
    return this.success({ value: base + (ctx.getConfig<number>("addend") ?? 1) });
  }
}

export const double = stepHandler("ts.double", (ctx) => {
  count("ts.double");
  return { value: 2 * ctx.getDependencyField<number>("add", "value")!, retry_count: ctx.retryCount };
});

export const flaky = stepHandler("ts.flaky", (ctx) => {
  count("ts.flaky");
  if (!ctx.isRetry()) {
    return StepHandlerResult.failure("the first attempt always fails", { errorType: "retryable_error", retryable: true, retryAfter: 0.1, metadata: { why: "test" } });
  }
  return { attempt: ctx.retryCount + 1, max: ctx.maxRetries };
});

export class RejectHandler extends StepHandler {
  static override handlerName = "ts.reject";
  async call(_ctx: StepContext) {
    count("ts.reject");
    throw new PermanentError("the input can never be valid", { errorType: "validation_error", metadata: { field: "value" } });
  }
}

export const route = stepHandler("ts.route", (ctx) => {
  count("ts.route");
  const v = ctx.getDependencyField<number>("validate", "value")!;
  return StepHandlerResult.decision(v < 100 ? ["small"] : ["small", "big"], { v }, { value: v });
});

export const sum = stepHandler("ts.sum", (ctx) => {
  count("ts.sum");
  let total = 0;
  const from = ctx.getDependencyResultKeys().filter((k) => k === "small" || k === "big").sort();
  for (const k of from) total += ctx.getDependencyField<number>(k, "value")!;
  return { value: total, from };
});

export const plan = stepHandler("ts.plan", (ctx) => {
  count("ts.plan");
  const items = ctx.getInput<number>("items") ?? 0;
  return StepHandlerResult.batches("work", createCursorConfigs(items, 10), { totalItems: items });
});

export const batchWork = stepHandler("ts.batch_work", (ctx) => {
  count("ts.batch_work");
  const b = ctx.batch;
  if (!b) throw new PermanentError("ts.batch_work runs as a batch worker");
  if (b.is_no_op) return { items_processed: 0, sum: 0 };
  const start = b.cursor.start_cursor as number;
  const end = b.cursor.end_cursor as number;
  let next = ctx.hasCheckpoint() ? (ctx.checkpointCursor as number) : start;
  let acc = (ctx.accumulatedResults as number | undefined) ?? 0;
  const stop = Math.min(end, next + (ctx.getConfig<number>("checkpoint_every") ?? end));
  for (; next < stop; next++) acc += next;
  if (next < end) return StepHandlerResult.checkpointYield(next, next - start, acc);
  return { items_processed: end - start, sum: acc, yields: ctx.checkpoint?.yields ?? 0 };
});

export const batchTotal = stepHandler("ts.batch_total", (ctx) => {
  count("ts.batch_total");
  const workers = ctx.getAllDependencyResults<{ items_processed: number; sum: number }>("work_");
  return { workers: workers.length, items: workers.reduce((a, w) => a + w.items_processed, 0), sum: workers.reduce((a, w) => a + w.sum, 0) };
});

export const slow = stepHandler("ts.slow", async (ctx) => {
  count("ts.slow");
  const marker = ctx.getInput<string>("marker");
  if (!ctx.isRetry()) {
    if (marker) {
      // Written whole, then renamed: a test that sees the marker and kills
      // the worker must find the pid in it (writeFileSync creates the file
      // before it writes).
      writeFileSync(`${marker}.tmp`, String(process.pid));
      renameSync(`${marker}.tmp`, marker);
    }
    await sleep(ctx.getInputOr<number>("sleep_ms", 0));
  }
  return { attempt: ctx.retryCount + 1, pid: process.pid };
});

/** A result of size bytes (context {size}), for the body limit. */
export const big = stepHandler("ts.big", (ctx) => ({ blob: "x".repeat(ctx.getInputOr<number>("size", 10)) }));
