#!/usr/bin/env bash
# Runs the TypeScript example end to end: builds tasker and the SDK, starts
# `tasker serve` with templates/ on a fresh SQLite database, starts a
# TypeScript worker for handlers/, runs two orders (one auto-approved, one
# reviewed after a retry), prints their steps' results, and stops both.
#   examples/typescript/run.sh          (PORT=8091 by default)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
sdk="$root/sdk/typescript"
port="${PORT:-8091}"
url="http://127.0.0.1:$port"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "== building tasker, the SDK and the handlers"
(cd "$root" && go build -o "$tmp/tasker" ./cmd/tasker)
(cd "$sdk" && { [ -d node_modules ] || npm ci --no-audit --no-fund --silent; } && npx tsc -p .)
"$sdk/node_modules/.bin/tsc" -p "$here"

echo "== tasker serve on $url"
"$tmp/tasker" serve --db "$tmp/tasker.db" --templates "$here/templates" --http "127.0.0.1:$port" 2>"$tmp/serve.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "$url/health" >/dev/null && break; sleep 0.1; done

echo "== TypeScript worker"
node "$sdk/dist/cli.js" --server "$url" --namespace ts_orders --handlers "$here/dist" 2>"$tmp/worker.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "$url/v1/workers/metrics" | grep -q ts_orders.validate && break; sleep 0.1; done

run_order() {
  local items="$1" id status
  id=$(curl -sf -XPOST "$url/v1/tasks" -H 'content-type: application/json' -d "{
    \"namespace\":\"ts_orders\",\"name\":\"order_fulfillment\",\"version\":\"1.0.0\",
    \"context\":{\"items\":$items},\"initiator\":\"example\",\"reason\":\"demo\",
    \"source_system\":\"examples/typescript\",\"tags\":[]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["task_uuid"])')
  for _ in $(seq 200); do
    status=$(curl -sf "$url/v1/tasks/$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case "$status" in complete|error) break ;; esac
    sleep 0.1
  done
  echo "task $id: $status"
  curl -sf "$url/v1/tasks/$id/workflow_steps" | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    print("  %-14s %-9s attempts=%d %s" % (s["name"], s["current_state"], s["attempts"], json.dumps(s.get("results"))))'
}

echo "== an order of 40: auto-approved"
run_order '[{"sku":"A","price":20,"qty":2}]'
echo "== an order of 150: manual review (busy on the first attempt, retried)"
run_order '[{"sku":"B","price":50,"qty":3}]'
