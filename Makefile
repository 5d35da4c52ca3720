# Shortcuts; the README's two commands need none of them.

.PHONY: test bench bench-river bench-structures fuzz ci libtasker

test:
	go test -race ./...

# End-to-end latency and throughput of the example shapes.
bench:
	go run ./cmd/tasker bench --tasks 500 --duration 5s

# A backlog of single-step tasks drained by Tasker against one of no-op jobs
# drained by River, on the same PostgreSQL database, three rounds interleaved,
# both with a concurrency of 2,000 (River's benchmark's MaxWorkers);
# prints the medians and the ratio (docs/benchmarks.md). River is a
# dependency of the module in bench/ only.
PG_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
bench-river:
	cd bench && go run ./river --database-url '$(PG_URL)' --jobs 20000 --rounds 3

# Every concurrent structure of docs/concurrency.md against its candidates,
# one goroutine per core (g1) and sixteen (g16), on the path production
# takes. Each round runs every candidate once, side by side; five rounds,
# interleaved, so that a noisy moment hits all the candidates of a round.
# With TASKER_TEST_POSTGRES_URL set, BenchmarkLockTask runs on PostgreSQL too.
STRUCTURES = ./internal/dispatch ./internal/statemanager ./internal/orchestration ./internal/stats \
	./internal/correlation ./internal/templatecache ./internal/resilience ./internal/events ./queue/postgres
bench-structures:
	for i in 1 2 3 4 5; do go test -run '^$$' -bench . -benchtime 300ms -count 1 $(STRUCTURES) || exit 1; done

fuzz:
	go test ./template -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60s
	go test ./internal/wire -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 60s
	go test ./internal/cli/contextflag -run '^$$' -fuzz '^FuzzParseContext$$' -fuzztime 60s
	go test ./internal/api -run '^$$' -fuzz '^FuzzRequestBodies$$' -fuzztime 60s
	go test ./internal/auth -run '^$$' -fuzz '^FuzzAuthenticate$$' -fuzztime 60s
	go test ./internal/dynamic -run '^$$' -fuzz '^FuzzParseOutcome$$' -fuzztime 60s
	go test ./internal/dynamic -run '^$$' -fuzz '^FuzzBatchPlan$$' -fuzztime 60s
	go test ./internal/domainevents -run '^$$' -fuzz '^FuzzCheckPattern$$' -fuzztime 60s
	go test . -run '^$$' -fuzz '^FuzzCanonicalJSON$$' -fuzztime 60s

ci:
	bash .ci/run

# The C ABI as a shared library and its header (docs/libtasker.md): a host
# process (Python through ctypes, ...) embeds the engine and runs handlers.
libtasker:
	CGO_ENABLED=1 go build -buildmode=c-shared -o libtasker.so ./cmd/libtasker
