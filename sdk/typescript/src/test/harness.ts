// Test harness: a real `tasker serve` built from this tree (or $TASKER_BIN),
// on a fresh SQLite database, with the templates of test-fixtures.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url)); // dist/test
export const sdkDir = resolve(here, "../..");
export const repoDir = resolve(sdkDir, "../..");
export const fixtures = join(sdkDir, "test-fixtures", "templates");
export const handlersDir = join(here, "handlers");
export const cliPath = join(sdkDir, "dist", "cli.js");

let built: string | undefined;

/** The tasker binary: $TASKER_BIN, or built once from the tree. */
export function taskerBin(): string {
  if (process.env.TASKER_BIN) return process.env.TASKER_BIN;
  if (built) return built;
  const out = join(mkdtempSync(join(tmpdir(), "tasker-tsbin-")), "tasker");
  execFileSync("go", ["build", "-o", out, "./cmd/tasker"], { cwd: repoDir, stdio: "inherit" });
  built = out;
  return out;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? res(a.port) : rej(new Error("no port"))));
    });
  });
}

export interface ServerOptions {
  dir?: string;
  port?: number;
  templates?: string;
  args?: string[];
  /** The tests' short timeouts (complete and claim 2s); default true. */
  shortTimeouts?: boolean;
}

/** A running `tasker serve`. */
export class Server {
  proc!: ChildProcess;
  url: string;
  log = "";
  readonly dir: string;
  private readonly ownsDir: boolean;
  constructor(
    readonly port: number,
    dir: string | undefined,
    private readonly templates: string,
    private readonly args: string[],
  ) {
    this.ownsDir = !dir;
    this.dir = dir ?? mkdtempSync(join(tmpdir(), "tasker-ts-"));
    this.url = `http://127.0.0.1:${port}`;
  }

  static async start(opts: ServerOptions = {}): Promise<Server> {
    const short = opts.shortTimeouts === false ? [] : ["--pull-complete-timeout", "2s", "--claim-timeout", "2s"];
    const s = new Server(opts.port ?? (await freePort()), opts.dir, opts.templates ?? fixtures, [...short, ...(opts.args ?? [])]);
    await s.spawn();
    return s;
  }

  async spawn(): Promise<void> {
    this.proc = spawn(
      taskerBin(),
      ["serve", "--db", join(this.dir, "tasker.db"), "--templates", this.templates, "--http", `127.0.0.1:${this.port}`,
        "--shutdown-timeout", "5s", ...this.args],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.proc.stdout!.on("data", (d) => (this.log += d));
    this.proc.stderr!.on("data", (d) => (this.log += d));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`tasker serve exited ${this.proc.exitCode}:\n${this.log}`);
      try {
        if ((await fetch(`${this.url}/health`)).ok) return;
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    throw new Error(`tasker serve did not answer /health in 20s:\n${this.log}`);
  }

  /** Stops the server (SIGTERM, then SIGKILL after 10s). */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(t);
  }

  async close(): Promise<void> {
    await this.stop();
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }

  async api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.url + path, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  /**
   * Waits until a worker serving handler is registered: a step whose
   * handler no worker serves waits for one (no attempt spent).
   */
  async waitWorker(handler: string, timeoutMs = 15_000): Promise<void> {
    await eventually(`a worker serving ${handler} to register`, async () => {
      try {
        const m = await this.api<{ workers: Array<{ handlers: string[] }> }>("GET", "/v1/workers/metrics");
        return m.workers.some((w) => w.handlers.includes(handler));
      } catch {
        return false;
      }
    }, timeoutMs);
  }

  async createTask(name: string, context: unknown, namespace = "tsdk"): Promise<string> {
    const r = await this.api<{ task_uuid: string }>("POST", "/v1/tasks", {
      namespace, name, version: "1.0.0", context, initiator: "ts-test", reason: "test", source_system: "node-test", tags: [],
    });
    return r.task_uuid;
  }

  /** Waits until the task is finished; returns it and its steps by name. */
  async waitTask(id: string, timeoutMs = 20_000): Promise<{ task: any; steps: Record<string, any> }> {
    const deadline = Date.now() + timeoutMs;
    let task: any;
    while (Date.now() < deadline) {
      task = await this.api("GET", `/v1/tasks/${id}`);
      if (["complete", "error", "cancelled", "resolved_manually"].includes(String(task.status).toLowerCase())) {
        const steps: Record<string, any> = {};
        for (const s of await this.api<any[]>("GET", `/v1/tasks/${id}/workflow_steps`)) steps[s.name] = s;
        return { task, steps };
      }
      await sleep(50);
    }
    throw new Error(`task ${id} not finished in ${timeoutMs}ms: ${JSON.stringify(task)}\n${this.log.slice(-3000)}`);
  }
}

/** Waits until cond() is true. */
export async function eventually(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export { existsSync };

/** A logger that keeps the records (for asserting on them) and prints nothing. */
export function memoryLogger() {
  const records: Array<{ level: string; msg: string; fields?: Record<string, unknown> }> = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void records.push({ level, msg, fields });
  return { records, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
