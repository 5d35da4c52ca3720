package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"
)

// checkpointEvery is how often the checkpointer copies the WAL back into the
// database file. The shorter, the less each checkpoint copies and the less
// the writer's own backstop checkpoint (autoCheckpointPages) has left to
// copy and sync when a WAL that readers kept from starting over passes it:
// with 250 ms, the p99 latency of linear tasks at half the saturation rate
// was 44–50 ms on the development VM, with 50 ms 22–23 ms, for the same
// throughput (docs/sqlite.md, docs/benchmarks.md "Latency at half load").
const checkpointEvery = 50 * time.Millisecond

// autoCheckpointPages is the writer's own checkpoint threshold: a backstop in
// case the checkpointer falls behind, far above what it lets accumulate.
const autoCheckpointPages = 10000

// startCheckpointer runs PASSIVE checkpoints on a connection of its own.
// SQLite's default is to checkpoint inside the commit that crosses 1000 WAL
// pages, fsync included, which put a multi-millisecond stall on one commit
// in every few hundred. A passive checkpoint never waits for the writer and
// the writer never waits for it.
func (db *DB) startCheckpointer(syncMode string) error {
	c, err := sql.Open("sqlite", dsn(db.Path, roleCheckpointer, syncMode))
	if err != nil {
		return fmt.Errorf("open database %q: checkpointer: %w", db.Path, err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	db.ckpt, db.ckptStop, db.ckptDone = c, cancel, make(chan struct{})
	go func() {
		defer close(db.ckptDone)
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		var seen time.Time // the WAL's modification time at the last checkpoint
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			// An idle database costs a stat, not a query.
			fi, err := os.Stat(db.Path + "-wal")
			if err != nil || fi.ModTime().Equal(seen) {
				continue
			}
			seen = fi.ModTime()
			var busy, logPages, done int
			if err := c.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done); err != nil && ctx.Err() == nil {
				db.Logger.Warn("sqlite checkpoint failed; the writer's own checkpoint remains as a backstop", "path", db.Path, "error", err)
			}
		}
	}()
	return nil
}

func (db *DB) stopCheckpointer() error {
	if db.ckpt == nil {
		return nil
	}
	db.ckptStop()
	<-db.ckptDone
	return db.ckpt.Close()
}
