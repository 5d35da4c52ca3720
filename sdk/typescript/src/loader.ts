// Finds the handlers of a directory: every module in it (.js, .mjs, .cjs;
// not .d.ts, not in subdirectories) is imported, and each export that is a
// stepHandler value or a StepHandler subclass is a handler.

import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

import { type Handler, asHandler } from "./handler.js";

export async function loadHandlers(dir: string): Promise<Handler[]> {
  const abs = resolve(dir);
  let names: string[];
  try {
    names = await readdir(abs);
  } catch (err) {
    throw new Error(`--handlers ${dir}: cannot read the directory (${(err as Error).message}): give the directory of the handler modules (compiled .js)`);
  }
  const files = names.filter((n) => /\.(m|c)?js$/.test(n)).sort();
  if (files.length === 0) {
    throw new Error(`--handlers ${dir}: no .js/.mjs module in it: compile TypeScript handlers first (tsc), and point at the output directory`);
  }
  const byName = new Map<string, { h: Handler; file: string }>();
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(abs, f)).href)) as Record<string, unknown>;
    for (const [exp, v] of Object.entries(mod)) {
      let h: Handler | undefined;
      try {
        h = asHandler(v);
      } catch (err) {
        throw new Error(`${f}: export ${exp}: ${(err as Error).message}`);
      }
      if (!h) continue;
      const seen = byName.get(h.handlerName);
      if (seen && seen.h !== h) throw new Error(`handler ${JSON.stringify(h.handlerName)} is exported by ${seen.file} and ${f}: handler names are unique`);
      byName.set(h.handlerName, { h, file: f });
    }
  }
  if (byName.size === 0) {
    throw new Error(`--handlers ${dir}: its modules export no handler: export stepHandler(...) values or StepHandler subclasses with a static handlerName`);
  }
  return [...byName.values()].map((e) => e.h);
}
