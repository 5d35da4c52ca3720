package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// openPool opens a pool whose connections carry the application name app
// (so that their server processes can be found) and count their round
// trips and statements as Tasker's pool does.
func openPool(ctx context.Context, dbURL, app string) (*pgxpool.Pool, *counter, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, nil, err
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	c := &counter{}
	cfg.ConnConfig.Tracer = c
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return pool, c, nil
}

// counter counts round trips (each query, batch and prepare) and
// statements (each query and each statement of a batch).
type counter struct{ trips, stmts atomic.Uint64 }

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.trips.Add(1)
	c.stmts.Add(1)
	return ctx
}

func (*counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *counter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.trips.Add(1)
	return ctx
}

func (c *counter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.stmts.Add(1)
}

func (*counter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

func (c *counter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.trips.Add(1)
	return ctx
}

func (*counter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads a local postgres process's CPU time from /proc (fields 14
// and 15 of stat, in ticks of 10ms, Linux's USER_HZ).
func procCPU(pid int) (time.Duration, bool) {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return 0, false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// pgCPU samples, every 100ms, the CPU time of the server processes serving
// the connections named app and of the server's background processes, as
// `tasker bench --burn-down` does.
type pgCPU struct {
	admin  *pgxpool.Pool
	app    string
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu              sync.Mutex
	first, last     map[int]time.Duration
	background      map[int]bool
	measured        bool
	backends, bgCPU time.Duration
}

func startPGCPU(ctx context.Context, admin *pgxpool.Pool, app string) (*pgCPU, error) {
	c := &pgCPU{admin: admin, app: app, first: map[int]time.Duration{}, last: map[int]time.Duration{}, background: map[int]bool{}, done: make(chan struct{})}
	if err := c.sample(ctx, true); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	go func() {
		defer close(c.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				_ = c.sample(sctx, false)
			}
		}
	}()
	return c, nil
}

func (c *pgCPU) sample(ctx context.Context, first bool) error {
	rows, err := c.admin.Query(ctx, `SELECT pid, backend_type <> 'client backend' FROM pg_stat_activity
		WHERE application_name = $1 OR backend_type <> 'client backend'`, c.app)
	if err != nil {
		return err
	}
	type proc struct {
		pid        int32
		background bool
	}
	procs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (proc, error) {
		var p proc
		err := r.Scan(&p.pid, &p.background)
		return p, err
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range procs {
		cpu, ok := procCPU(int(p.pid))
		if !ok {
			continue
		}
		c.measured = true
		if first {
			c.first[int(p.pid)] = cpu
		}
		c.last[int(p.pid)] = cpu
		c.background[int(p.pid)] = p.background
	}
	return nil
}

// stop takes a last sample and returns the CPU time of the backends and of
// the background processes since the first sample.
func (c *pgCPU) stop() (backends, background time.Duration, ok bool) {
	c.once.Do(func() {
		c.cancel()
		<-c.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.sample(ctx, false)
		c.mu.Lock()
		defer c.mu.Unlock()
		for pid, cpu := range c.last {
			if d := cpu - c.first[pid]; c.background[pid] {
				c.bgCPU += d
			} else {
				c.backends += d
			}
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.backends, c.bgCPU, c.measured
}
