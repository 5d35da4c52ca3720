# Shortcuts; the README's two commands need none of them.

.PHONY: test bench bench-structures fuzz ci

test:
	go test -race ./...

# End-to-end latency and throughput of the example shapes.
bench:
	go run ./cmd/tasker bench --tasks 500 --duration 5s

# Every concurrent structure of docs/concurrency.md against its candidates,
# one goroutine per core (g1) and sixteen (g16), three runs each.
STRUCTURES = ./internal/dispatch ./internal/statemanager ./internal/stats ./internal/correlation \
	./internal/templatecache ./internal/debugtrack ./internal/resilience ./internal/events ./queue/postgres
bench-structures:
	go test -run '^$$' -bench . -benchtime 1s -count 3 $(STRUCTURES)

fuzz:
	go test ./template -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60s
	go test ./internal/wire -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime 60s
	go test ./internal/cli/contextflag -run '^$$' -fuzz '^FuzzParseContext$$' -fuzztime 60s

ci:
	bash .ci/run
