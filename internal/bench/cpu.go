package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tasker-go/tasker/internal/pgdb"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times: USER_HZ, 100 on
// every Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// procCPU reads a PostgreSQL server process's CPU time, user and system,
// from /proc; ok is false when the process is not a local postgres.
func procCPU(pid int) (time.Duration, bool) {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return 0, false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: the fields
	// counted from 1 start after its closing parenthesis at field 3;
	// utime and stime are fields 14 and 15.
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
	return time.Duration(utime+stime) * clockTick, true
}

// pgCPU samples the CPU time of the server's processes that serve the
// connections named app (the backends) and of its background processes,
// every 100ms until stopped: a process that exits between samples keeps
// the time of its last sample.
type pgCPU struct {
	admin  *pgdb.DB
	app    string
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu         sync.Mutex // guards the fields below
	first      map[int]time.Duration
	last       map[int]time.Duration
	background map[int]bool
	measured   bool
	backends   time.Duration
	bg         time.Duration
}

func startPGCPU(ctx context.Context, admin *pgdb.DB, app string) (*pgCPU, error) {
	c := &pgCPU{admin: admin, app: app, first: map[int]time.Duration{}, last: map[int]time.Duration{}, background: map[int]bool{}, done: make(chan struct{})}
	if err := c.sample(ctx, admin, app, true); err != nil {
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
				_ = c.sample(sctx, admin, app, false)
			}
		}
	}()
	return c, nil
}

func (c *pgCPU) sample(ctx context.Context, admin *pgdb.DB, app string, first bool) error {
	rows, err := admin.Pool.Query(ctx, `SELECT pid, backend_type <> 'client backend' FROM pg_stat_activity
		WHERE application_name = $1 OR backend_type <> 'client backend'`, app)
	if err != nil {
		return fmt.Errorf("read pg_stat_activity: %w", err)
	}
	type proc struct {
		pid        int
		background bool
	}
	var procs []proc
	for rows.Next() {
		var p proc
		var pid int32
		if err := rows.Scan(&pid, &p.background); err != nil {
			rows.Close()
			return err
		}
		p.pid = int(pid)
		procs = append(procs, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range procs {
		cpu, ok := procCPU(p.pid)
		if !ok {
			continue
		}
		c.measured = true
		if first {
			c.first[p.pid] = cpu
		}
		c.last[p.pid] = cpu
		c.background[p.pid] = p.background
	}
	return nil
}

// stop ends the sampling with a last sample and returns the CPU time of the
// backends and of the background processes since the first sample; ok is
// false when no server process could be read.
func (c *pgCPU) stop() (backends, background time.Duration, ok bool) {
	c.once.Do(func() {
		c.cancel()
		<-c.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.sample(ctx, c.admin, c.app, false)
		c.mu.Lock()
		defer c.mu.Unlock()
		for pid, cpu := range c.last {
			d := cpu - c.first[pid]
			if c.background[pid] {
				c.bg += d
			} else {
				c.backends += d
			}
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.backends, c.bg, c.measured
}
