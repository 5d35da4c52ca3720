// Benchmark: no-op steps (single, linear, diamond) run by Go handlers inside `tasker serve` against
// the same steps run by one TypeScript worker process over HTTP, in one
// server (embedded SQLite), interleaved round by round.
//   npm run build && node dist/bench/bench.js [--rounds 5] [--latency-tasks 50]
//     [--throughput-tasks 300] [--concurrency 32]   (TASKER_BIN: a built tasker)
// Latency: tasks one at a time; completed_at - created_at from the server.
// Throughput: a burst of tasks, steps / wall time until all are complete.

import { spawn } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

import { Server, cliPath, sdkDir } from "../test/harness.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    "latency-tasks": { type: "string", default: "50" },
    "throughput-tasks": { type: "string", default: "300" },
    concurrency: { type: "string", default: "32" },
  },
});
const rounds = Number(values.rounds);
const latencyTasks = Number(values["latency-tasks"]);
const throughputTasks = Number(values["throughput-tasks"]);
const concurrency = Number(values.concurrency);

const shapes = { single: 1, linear: 4, diamond: 4 } as const;
type Shape = keyof typeof shapes;
type Kind = "go" | "ts";

const server = await Server.start({ templates: join(sdkDir, "bench-fixtures", "templates"), shortTimeouts: false });
const worker = spawn(process.execPath, [cliPath, "--server", server.url, "--namespace", "bench_ts", "--handlers", join(sdkDir, "dist", "bench", "handlers"),
  "--concurrency", String(concurrency), "--log-level", "warn"], { stdio: ["ignore", "inherit", "inherit"] });
try {
  await server.waitWorker("ts.noop");
  const lat: Record<string, number[]> = {};
  const thr: Record<string, number[]> = {};
  // Warm up both paths.
  for (const k of ["go", "ts"] as Kind[]) await latency(k, "single", 10);
  for (let r = 0; r < rounds; r++) {
    for (const shape of Object.keys(shapes) as Shape[]) {
      const order: Kind[] = r % 2 === 0 ? ["go", "ts"] : ["ts", "go"];
      for (const k of order) (lat[`${k}/${shape}`] ??= []).push(await latency(k, shape, latencyTasks));
      for (const k of order) (thr[`${k}/${shape}`] ??= []).push(await throughput(k, shape, throughputTasks));
    }
    process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  console.log(`rounds=${rounds} latency-tasks=${latencyTasks} throughput-tasks=${throughputTasks} ts-concurrency=${concurrency} node=${process.version}`);
  console.log("shape   steps/s Go  steps/s TS  TS/Go   p50/task Go  p50/task TS  added p50/step");
  for (const shape of Object.keys(shapes) as Shape[]) {
    const g = median(thr[`go/${shape}`]!), t = median(thr[`ts/${shape}`]!);
    const lg = median(lat[`go/${shape}`]!), lt = median(lat[`ts/${shape}`]!);
    console.log(`${shape.padEnd(7)} ${g.toFixed(0).padStart(10)} ${t.toFixed(0).padStart(11)} ${(t / g).toFixed(2).padStart(6)} ${lg.toFixed(2).padStart(10)}ms ${lt.toFixed(2).padStart(10)}ms ${((lt - lg) / shapes[shape]).toFixed(2).padStart(12)}ms`);
  }
  console.log("per round (steps/s):", JSON.stringify(Object.fromEntries(Object.entries(thr).map(([k, v]) => [k, v.map((x) => Math.round(x))]))));
  console.log("per round (p50 ms/task):", JSON.stringify(Object.fromEntries(Object.entries(lat).map(([k, v]) => [k, v.map((x) => +x.toFixed(2))]))));
} finally {
  worker.kill("SIGTERM");
  await new Promise((r) => worker.once("exit", r));
  await server.close();
}

/** p50 of completed_at - created_at over n tasks run one at a time, in ms. */
async function latency(kind: Kind, shape: Shape, n: number): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = await server.createTask(shape, {}, `bench_${kind}`);
    for (;;) {
      const t = await server.api("GET", `/v1/tasks/${id}`);
      if (t.status === "complete") {
        ms.push(Date.parse(t.completed_at) - Date.parse(t.created_at) + micros(t.completed_at) - micros(t.created_at));
        break;
      }
      if (t.status === "error") throw new Error(`task ${id} failed`);
      await sleep(2);
    }
  }
  return median(ms);
}

/** Steps per second of a burst of n tasks. */
async function throughput(kind: Kind, shape: Shape, n: number): Promise<number> {
  const ns = `bench_${kind}`;
  const done = async () => (await server.api("GET", `/v1/tasks?namespace=${ns}&status=complete&page=1&per_page=1`)).pagination.total_count as number;
  const base = await done();
  const start = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < n) {
      next++;
      await server.createTask(shape, {}, ns);
    }
  }));
  while ((await done()) < base + n) await sleep(10);
  return (n * shapes[shape]) / ((performance.now() - start) / 1000);
}

/** The sub-millisecond part of an RFC 3339 timestamp, in ms. */
function micros(ts: string): number {
  const m = /\.(\d+)/.exec(ts);
  if (!m) return 0;
  const frac = Number(`0.${m[1]}`) * 1000;
  return frac - Math.floor(frac);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
