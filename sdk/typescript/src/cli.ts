#!/usr/bin/env node
// node dist/cli.js --server URL --namespace NS [--namespace NS2 ...] --handlers DIR
// Imports every module of DIR, registers the handlers they export, and runs
// a worker until SIGTERM/SIGINT (a second signal stops at once, releasing
// the running steps).

import { parseArgs } from "node:util";

import { loadHandlers } from "./loader.js";
import { Worker, stderrLogger } from "./worker.js";

const usage = `usage: tasker-worker --server URL --namespace NS [--namespace NS2 ...] --handlers DIR
  [--concurrency N] [--worker-id ID] [--poll-timeout-ms MS] [--shutdown-timeout-ms MS]
  [--token TOKEN | --api-key KEY] [--log-level debug|info|warn|error]
env: TASKER_URL (for --server), TASKER_TOKEN, TASKER_API_KEY`;

function int(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} ${v}: give a whole number`);
  return n;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        server: { type: "string" },
        namespace: { type: "string", multiple: true, short: "n" },
        handlers: { type: "string" },
        concurrency: { type: "string" },
        "worker-id": { type: "string" },
        "poll-timeout-ms": { type: "string" },
        "shutdown-timeout-ms": { type: "string" },
        token: { type: "string" },
        "api-key": { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`tasker-worker: ${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage + "\n");
    return 0;
  }
  const server = values.server ?? process.env.TASKER_URL;
  const missing = [!server && "--server", !values.namespace?.length && "--namespace", !values.handlers && "--handlers"].filter(Boolean);
  if (missing.length > 0) {
    process.stderr.write(`tasker-worker: missing ${missing.join(", ")}\n${usage}\n`);
    return 2;
  }
  const level = (values["log-level"] ?? "info") as "debug" | "info" | "warn" | "error";
  if (!["debug", "info", "warn", "error"].includes(level)) {
    process.stderr.write(`tasker-worker: --log-level ${level}: give debug, info, warn or error\n`);
    return 2;
  }
  let worker: Worker;
  try {
    const handlers = await loadHandlers(values.handlers!);
    worker = new Worker({
      server: server!,
      namespaces: values.namespace!,
      handlers,
      workerId: values["worker-id"],
      concurrency: int("concurrency", values.concurrency, 10),
      pollTimeoutMs: int("poll-timeout-ms", values["poll-timeout-ms"], 10_000),
      shutdownTimeoutMs: int("shutdown-timeout-ms", values["shutdown-timeout-ms"], 30_000),
      token: values.token ?? process.env.TASKER_TOKEN,
      apiKey: values["api-key"] ?? process.env.TASKER_API_KEY,
      logger: stderrLogger(level),
    });
  } catch (err) {
    process.stderr.write(`tasker-worker: ${(err as Error).message}\n`);
    return 2;
  }
  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    process.stderr.write(`tasker-worker: ${sig}: ${signals === 1 ? "stopping after the running steps (again to stop now)" : "stopping now, releasing the running steps"}\n`);
    void worker.stop({ hard: signals > 1 });
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  await worker.run();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`tasker-worker: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
