// Unit tests of the handler API: what results and thrown errors become on
// the wire, and the StepContext accessors. No server.

import assert from "node:assert/strict";
import { test } from "node:test";

import { PermanentError, RetryableError, StepContext, StepHandler, StepHandlerResult, asHandler, createCursorConfigs, stepHandler } from "../index.js";
import { toCompletion } from "../handler.js";
import type { WireEvent } from "../wire.js";

function event(over: Partial<WireEvent> = {}): WireEvent {
  return {
    event_id: "e1", task_uuid: "t1", step_uuid: "s1", step_name: "step", namespace: "ns", handler_name: "h",
    task_context: { value: 3, nothing: null }, dependency_results: { a: { value: 4, nested: { x: 1 } }, work_002: { n: 2 }, work_001: { n: 1 }, other: null },
    initialization: { addend: 2 }, attempt: 2, max_attempts: 3, dispatched_at: "2026-12-04T00:00:00Z", ...over,
  };
}

test("StepContext accessors read the event", () => {
  const c = new StepContext(event());
  assert.equal(c.getInput("value"), 3);
  assert.equal(c.getInput("missing"), undefined);
  assert.equal(c.getInputOr("nothing", 7), 7);
  assert.equal(c.getConfig("addend"), 2);
  assert.deepEqual(c.getDependencyResult("a"), { value: 4, nested: { x: 1 } });
  assert.equal(c.getDependencyField("a", "nested", "x"), 1);
  assert.equal(c.getDependencyField("a", "value", "deeper"), undefined);
  assert.deepEqual(c.getAllDependencyResults("work_"), [{ n: 1 }, { n: 2 }]);
  assert.equal(c.retryCount, 1);
  assert.equal(c.maxRetries, 3);
  assert.ok(c.isRetry());
  assert.ok(!c.isLastRetry());
  assert.equal(c.batch, null);
  assert.ok(!c.hasCheckpoint());
  assert.equal(c.checkpointItemsProcessed, 0);
  const b = new StepContext(event({ batch: { cursor: { batch_id: "001", start_cursor: 0, end_cursor: 10, batch_size: 10 }, batch_metadata: { cursor_field: "id", failure_strategy: "fail_fast" }, is_no_op: false, template_step_name: "work" }, checkpoint: { cursor: 4, items_processed: 4, accumulated_results: 6 } }));
  assert.equal(b.batch?.cursor.end_cursor, 10);
  assert.ok(b.hasCheckpoint());
  assert.equal(b.checkpointCursor, 4);
  assert.equal(b.checkpointItemsProcessed, 4);
  assert.equal(b.accumulatedResults, 6);
});

test("results become completions of every outcome kind", () => {
  assert.deepEqual(toCompletion("e", { v: 1 }), { event_id: "e", outcome: "success", result: { v: 1 } });
  assert.deepEqual(toCompletion("e", undefined), { event_id: "e", outcome: "success", result: {} });
  assert.deepEqual(toCompletion("e", StepHandlerResult.success([1, 2])), { event_id: "e", outcome: "success", result: [1, 2] });
  assert.deepEqual(toCompletion("e", StepHandlerResult.failure("boom", { errorType: "timeout", retryable: false, retryAfter: 1.5, metadata: { k: "v" } })), {
    event_id: "e", outcome: "failure", error: { message: "boom", error_type: "timeout", retryable: false, retry_after_seconds: 1.5, metadata: { k: "v" } },
  });
  assert.deepEqual(toCompletion("e", StepHandlerResult.failure("boom")), { event_id: "e", outcome: "failure", error: { message: "boom", error_type: "handler_error", retryable: true } });
  assert.deepEqual(toCompletion("e", StepHandlerResult.checkpointYield(5, 5, { s: 10 })), { event_id: "e", outcome: "checkpoint_yield", checkpoint: { cursor: 5, items_processed: 5, accumulated_results: { s: 10 } } });
  assert.deepEqual(toCompletion("e", StepHandlerResult.decision(["a", "b"], { why: 1 })).outcome, "success");
  assert.deepEqual((toCompletion("e", StepHandlerResult.decision(["a", "b"], { why: 1 })) as { result: unknown }).result, { decision_point_outcome: { type: "create_steps", step_names: ["a", "b"] }, routing_context: { why: 1 } });
  assert.deepEqual((toCompletion("e", StepHandlerResult.noBranches("none")) as { result: unknown }).result, { decision_point_outcome: { type: "no_branches" }, reason: "none" });
  const batches = (toCompletion("e", StepHandlerResult.batches("w", createCursorConfigs(25, 10), { totalItems: 25 })) as { result: any }).result;
  assert.equal(batches.batch_processing_outcome.type, "create_batches");
  assert.equal(batches.batch_processing_outcome.worker_count, 3);
  assert.deepEqual(batches.batch_processing_outcome.cursor_configs[2], { batch_id: "003", start_cursor: 20, end_cursor: 25, batch_size: 5 });
  assert.deepEqual((toCompletion("e", StepHandlerResult.batches("w", [])) as { result: any }).result.batch_processing_outcome, { type: "no_batches" });
  const big = toCompletion("e", { n: 1n });
  assert.equal(big.outcome, "failure");
  assert.match((big as { error: { message: string } }).error.message, /not JSON/);
});

test("thrown errors become failures classified by their class", () => {
  assert.deepEqual(toCompletion("e", undefined, { error: new PermanentError("bad input", { errorType: "validation_error", metadata: { f: 1 } }) }), {
    event_id: "e", outcome: "failure", error: { message: "bad input", error_type: "validation_error", retryable: false, metadata: { f: 1 } },
  });
  assert.deepEqual(toCompletion("e", undefined, { error: new RetryableError("busy", { retryAfter: 2 }) }), {
    event_id: "e", outcome: "failure", error: { message: "busy", error_type: "RetryableError", retryable: true, retry_after_seconds: 2 },
  });
  assert.deepEqual(toCompletion("e", undefined, { error: new TypeError("x is undefined") }), { event_id: "e", outcome: "failure", error: { message: "x is undefined", error_type: "TypeError", retryable: true } });
});

test("bad arguments are refused with what to do", () => {
  assert.throws(() => StepHandlerResult.failure(""), /needs a message/);
  assert.throws(() => StepHandlerResult.failure("x", { retryAfter: -1 }), /retryAfter -1/);
  assert.throws(() => StepHandlerResult.decision([]), /noBranches/);
  assert.throws(() => StepHandlerResult.checkpointYield(null, 1), /needs a cursor/);
  assert.throws(() => StepHandlerResult.checkpointYield(1, -1), /itemsProcessed -1/);
  assert.throws(() => createCursorConfigs(10, 0), /batchSize 0/);
  assert.throws(() => stepHandler("", () => 1), /handler name/);
  class NoName extends StepHandler {
    call() {
      return 1;
    }
  }
  assert.throws(() => asHandler(NoName), /no static handlerName/);
  assert.equal(asHandler({ not: "a handler" }), undefined);
  assert.deepEqual(createCursorConfigs(0, 10), []);
});

test("a StepHandler class runs a fresh instance per step", async () => {
  const seen = new Set<object>();
  class Named extends StepHandler {
    static override handlerName = "x.named";
    call(ctx: StepContext) {
      seen.add(this);
      return this.success({ name: this.name, step: ctx.stepName });
    }
  }
  const h = asHandler(Named)!;
  assert.equal(h.handlerName, "x.named");
  const r = await h.run(new StepContext(event()));
  await h.run(new StepContext(event()));
  assert.equal(seen.size, 2);
  assert.deepEqual(toCompletion("e", r), { event_id: "e", outcome: "success", result: { name: "x.named", step: "step" } });
});
