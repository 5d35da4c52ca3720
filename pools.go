package tasker

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/tasker-go/tasker/internal/pgdb"
	"github.com/tasker-go/tasker/internal/resilience"
	"github.com/tasker-go/tasker/internal/sqlitedb"
	"github.com/tasker-go/tasker/queue"
	"github.com/tasker-go/tasker/taskertype"
)

// PoolStats describes one database connection pool the engine opened.
type PoolStats struct {
	// Name is "postgres", or "sqlite_writer" and "sqlite_readers".
	Name string
	// MaxConns bounds the pool; InUse and Idle are its connections now.
	MaxConns, InUse, Idle int
	// Acquires counts the connections handed out (PostgreSQL only; the
	// SQLite pools do not count them); Waits the acquires that had to wait
	// for one, and WaitTime their total wait.
	Acquires, Waits uint64
	WaitTime        time.Duration
}

// pools reads the pools of the backend the engine opened; nil when the
// store was passed in (Config.Store).
func (e *Engine) pools() []PoolStats {
	switch b := e.closer.(type) {
	case interface{ DB() *pgdb.DB }:
		st := b.DB().Pool.Stat()
		return []PoolStats{{Name: "postgres", MaxConns: int(st.MaxConns()), InUse: int(st.AcquiredConns()),
			Idle: int(st.IdleConns()), Acquires: uint64(st.AcquireCount()), Waits: uint64(st.EmptyAcquireCount()),
			WaitTime: st.EmptyAcquireWaitTime()}}
	case interface{ DB() *sqlitedb.DB }:
		db := b.DB()
		return []PoolStats{sqlPool("sqlite_writer", db.W.Stats()), sqlPool("sqlite_readers", db.R.Stats())}
	}
	return nil
}

func sqlPool(name string, s sql.DBStats) PoolStats {
	return PoolStats{Name: name, MaxConns: s.MaxOpenConnections, InUse: s.InUse, Idle: s.Idle,
		Waits: uint64(s.WaitCount), WaitTime: s.WaitDuration}
}

// QueueDepth is the messages a queue holds, visible now.
type QueueDepth struct {
	Queue string
	Depth int64
}

// QueueDepths counts the messages waiting in the orchestration queues and
// in the step queue of each registered template's namespace, in that order,
// leaving out those the backend has not created yet. It reads the queue
// backend once per queue.
func (e *Engine) QueueDepths(ctx context.Context) ([]QueueDepth, error) {
	names := []string{queue.TasksQueue, queue.ResultsQueue}
	var nss []string
	for _, t := range e.Templates() {
		if !slices.Contains(nss, t.Namespace) {
			nss = append(nss, t.Namespace)
		}
	}
	slices.Sort(nss)
	for _, ns := range nss {
		names = append(names, queue.StepQueue(ns))
	}
	out := make([]QueueDepth, 0, len(names))
	for _, n := range names {
		d, err := e.queue.QueueDepth(ctx, n)
		if errors.Is(err, taskertype.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("queue depth of %s: %w", n, err)
		}
		out = append(out, QueueDepth{Queue: n, Depth: d})
	}
	return out, nil
}

// Settings is the engine's configuration as it runs, with the defaults
// applied; nothing secret (no URL, no path).
type Settings struct {
	// Store and Queue name the backends: "postgres", "sqlite", "rabbitmq",
	// or the package name of one passed in Config.
	Store, Queue string
	// The circuit breakers' settings.
	BreakerFailureThreshold, BreakerHalfOpenProbes int
	BreakerOpenFor                                 time.Duration
}

// Settings returns the engine's settings.
func (e *Engine) Settings() Settings {
	return Settings{
		Store: backendName(e.rawStore), Queue: backendName(e.rawQueue),
		BreakerFailureThreshold: cmp.Or(e.cfg.CircuitBreaker.FailureThreshold, resilience.DefaultFailureThreshold),
		BreakerOpenFor:          cmp.Or(e.cfg.CircuitBreaker.OpenFor, resilience.DefaultOpenFor),
		BreakerHalfOpenProbes:   resilience.DefaultHalfOpenProbes,
	}
}

// backendName is the last element of v's package path.
func backendName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return "none"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	p := t.PkgPath()
	return p[strings.LastIndex(p, "/")+1:]
}
