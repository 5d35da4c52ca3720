// The SDK against a real `tasker serve` (built from this tree, or
// $TASKER_BIN): every outcome kind, a worker killed mid-step, the server
// restarted under a running worker, a graceful stop.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { Worker, asHandler, loadHandlers, WireClient } from "../index.js";
import * as fixtureHandlers from "./handlers/handlers.js";
import { Server, cliPath, eventually, handlersDir, memoryLogger } from "./harness.js";

const { calls } = fixtureHandlers;
const handlers = Object.values(fixtureHandlers).map((v) => asHandler(v)).filter((h) => h !== undefined);

let server: Server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server?.close();
});

function worker(opts: Partial<ConstructorParameters<typeof Worker>[0]> = {}) {
  const log = memoryLogger();
  const w = new Worker({ server: server.url, namespaces: ["tsdk"], handlers, concurrency: 4, pollTimeoutMs: 1000, backoffInitialMs: 50, backoffMaxMs: 500, logger: log, ...opts });
  const done = w.run();
  return { w, log, done, ready: server.waitWorker("ts.add") };
}

test("handlers of both styles: a class then a function, with dependency results and config", async () => {
  const { w, done, ready } = worker();
  try {
    await ready;
    const id = await server.createTask("ts_linear", { value: 5 });
    const { task, steps } = await server.waitTask(id);
    assert.equal(task.status, "complete");
    assert.deepEqual(steps.add.results, { value: 7 });
    assert.deepEqual(steps.double.results, { value: 14, retry_count: 0 });
  } finally {
    await w.stop();
    await done;
  }
});

test("failures: retryable with retry_after runs again; PermanentError ends the step at once", async () => {
  const { w, done, ready } = worker();
  try {
    await ready;
    const flaky = await server.createTask("ts_flaky", {});
    const perm = await server.createTask("ts_permanent", {});
    const f = await server.waitTask(flaky);
    assert.equal(f.task.status, "complete");
    assert.equal(f.steps.flaky.attempts, 2);
    assert.deepEqual(f.steps.flaky.results, { attempt: 2, max: 3 });
    const p = await server.waitTask(perm);
    assert.equal(p.task.status, "error");
    assert.equal(p.steps.reject.attempts, 1, "a permanent error is not retried");
    assert.equal(p.steps.reject.current_state, "error");
  } finally {
    await w.stop();
    await done;
  }
});

test("a decision creates the branches it names; deferred convergence joins them", async () => {
  const { w, done, ready } = worker();
  try {
    await ready;
    const low = await server.waitTask(await server.createTask("ts_decision", { value: 10 }));
    assert.equal(low.task.status, "complete");
    assert.ok(!("big" in low.steps), "big is not created below 100");
    assert.deepEqual(low.steps.finalize.results, { value: 12, from: ["small"] });
    const high = await server.waitTask(await server.createTask("ts_decision", { value: 500 }));
    assert.equal(high.task.status, "complete");
    assert.deepEqual(high.steps.finalize.results, { value: 1004, from: ["big", "small"] });
  } finally {
    await w.stop();
    await done;
  }
});

test("a batch: the plan creates workers, which yield checkpoints and resume from them", async () => {
  const { w, done, ready } = worker();
  try {
    await ready;
    const before = calls.get("ts.batch_work") ?? 0;
    const { task, steps } = await server.waitTask(await server.createTask("ts_batch", { items: 25 }));
    assert.equal(task.status, "complete");
    assert.deepEqual(steps.total.results, { workers: 3, items: 25, sum: (24 * 25) / 2 });
    // 10 items at 4 per run: 3 runs (2 yields); 5 items: 2 runs.
    assert.deepEqual(steps.work_001.results, { items_processed: 10, sum: 45, yields: 2 });
    assert.equal((calls.get("ts.batch_work") ?? 0) - before, 3 + 3 + 2);
    const empty = await server.waitTask(await server.createTask("ts_batch", { items: 0 }));
    assert.equal(empty.task.status, "complete");
    assert.deepEqual(empty.steps.total.results, { workers: 1, items: 0, sum: 0 });
  } finally {
    await w.stop();
    await done;
  }
});

test("a worker killed mid-step: the step fails after the complete timeout, is retried and completes once", async () => {
  const marker = join(server.dir, `marker-${Date.now()}`);
  const child = spawn(process.execPath, [cliPath, "--server", server.url, "--namespace", "tsdk", "--handlers", handlersDir, "--log-level", "warn"], { stdio: ["ignore", "ignore", "pipe"] });
  let childErr = "";
  child.stderr!.on("data", (d) => (childErr += d));
  await server.waitWorker("ts.slow");
  const id = await server.createTask("ts_slow", { marker, sleep_ms: 60_000 });
  await eventually("the CLI worker to start the step", () => existsSync(marker)).catch((err) => {
    throw new Error(`${err}\nworker: ${childErr}\nserver: ${server.log.slice(-2000)}`);
  });
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
  const before = calls.get("ts.slow") ?? 0;
  const { w, done, ready } = worker();
  try {
    await ready;
    const { task, steps } = await server.waitTask(id);
    assert.equal(task.status, "complete", childErr);
    assert.equal(steps.slow.attempts, 2);
    assert.equal(steps.slow.results.attempt, 2);
    assert.equal(steps.slow.results.pid, process.pid, "the second attempt ran in the new worker");
    assert.equal(Number(readFileSync(marker, "utf8")), child.pid, "the first attempt ran in the killed worker");
    assert.equal((calls.get("ts.slow") ?? 0) - before, 1, "the new worker ran the step once");
  } finally {
    await w.stop();
    await done;
  }
});

test("the CLI stops gracefully on SIGTERM: the running step finishes and is completed", async () => {
  const marker = join(server.dir, `marker-term-${Date.now()}`);
  const child = spawn(process.execPath, [cliPath, "--server", server.url, "--namespace", "tsdk", "--handlers", handlersDir], { stdio: ["ignore", "ignore", "pipe"] });
  let childErr = "";
  child.stderr!.on("data", (d) => (childErr += d));
  await server.waitWorker("ts.slow");
  const id = await server.createTask("ts_slow", { marker, sleep_ms: 1000 });
  await eventually("the CLI worker to start the step", () => existsSync(marker));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGTERM");
  assert.equal(await exited, 0, childErr);
  const { task, steps } = await server.waitTask(id, 5000);
  assert.equal(task.status, "complete", childErr);
  assert.equal(steps.slow.attempts, 1, "the step finished in the stopping worker");
  assert.match(childErr, /worker deregistered/);
  const m = await new WireClient({ server: server.url }).metrics();
  assert.ok(!m.workers.some((x) => childErr.includes(x.worker_id)), "the worker deregistered");
});

test("the server restarted under a running worker: it re-registers and runs the steps of before and after", async () => {
  const { w, log, done, ready } = worker();
  try {
    await ready;
    const first = await server.waitTask(await server.createTask("ts_linear", { value: 1 }));
    assert.equal(first.task.status, "complete");
    // A step running while the server restarts: its completion reaches a
    // server that never handed it out; the step's claim expires and it runs again.
    const marker = join(server.dir, `marker-restart-${Date.now()}`);
    const mid = await server.createTask("ts_restart", { marker, sleep_ms: 1500 });
    await eventually("the step to start", () => existsSync(marker));
    await server.stop();
    await server.spawn();
    await server.waitWorker("ts.add");
    const regs = w.stats.registrations;
    const second = await server.waitTask(await server.createTask("ts_linear", { value: 2 }));
    assert.equal(second.task.status, "complete", JSON.stringify(second.steps) + JSON.stringify(log.records.slice(-10)));
    assert.deepEqual(second.steps.double.results, { value: 8, retry_count: 0 });
    const m = await server.waitTask(mid);
    assert.equal(m.task.status, "complete", JSON.stringify(m.steps) + server.log.slice(-3000));
    assert.ok(m.steps.slow.results.attempt >= 2, "the step ran again after the restart");
    assert.ok(w.stats.registrations >= 2 && regs >= 2, `registered ${w.stats.registrations} times`);
    assert.ok(w.stats.reconnects >= 1 || log.records.some((r) => /registering again/.test(r.msg)));
  } finally {
    await w.stop();
    await done;
  }
});

test("a result over the server's body limit fails its step for good; the other completions still go through", async () => {
  const small = await Server.start({ args: ["--max-body-bytes", "4096"] });
  const log = memoryLogger();
  const w = new Worker({ server: small.url, namespaces: ["tsdk"], handlers, concurrency: 4, pollTimeoutMs: 1000, backoffInitialMs: 50, logger: log });
  const done = w.run();
  try {
    await small.waitWorker("ts.big");
    const ids = await Promise.all([small.createTask("ts_big", { size: 10_000 }), small.createTask("ts_big", { size: 10 })]);
    const [tooBig, ok] = await Promise.all(ids.map((id) => small.waitTask(id)));
    assert.equal(tooBig!.task.status, "error");
    assert.equal(tooBig!.steps.big.attempts, 1, "not retried");
    assert.equal(ok!.task.status, "complete");
    assert.ok(log.records.some((r) => /larger than the server accepts/.test(r.msg)));
  } finally {
    await w.stop();
    await done;
    await small.close();
  }
});

test("loadHandlers finds both styles in a directory; bad directories are refused with what to do", async () => {
  const hs = await loadHandlers(handlersDir);
  assert.deepEqual(hs.map((h) => h.handlerName).sort(), ["ts.add", "ts.batch_total", "ts.batch_work", "ts.big", "ts.double", "ts.flaky", "ts.plan", "ts.reject", "ts.route", "ts.slow", "ts.sum"]);
  await assert.rejects(loadHandlers(join(handlersDir, "nope")), /cannot read the directory/);
});
