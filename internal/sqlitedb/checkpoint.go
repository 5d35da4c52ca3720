package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"
)

// The checkpointer looks at the WAL every checkpointBusy while it changes,
// and copies what it gathered back into the database file; once it stops
// changing, the looks space out, doubling up to checkpointIdle, so that an
// idle database costs four stats a second. Under load, the shorter
// interval makes each checkpoint copy less, and (we think, from the
// pattern of its fsyncs) leaves less for the writer's own backstop
// checkpoint (autoCheckpointPages) to copy and sync. Measured on the
// development VM at half the saturation rate, medians of three interleaved
// runs against a fixed 250 ms: the p99 latency 0.52× (linear) and 0.42×
// (dag) with a fixed 50 ms, 0.55× and 0.49× with this back-off
// (docs/sqlite.md, docs/benchmarks.md "Latency at half load"). The cost is
// more checkpoints under load: at most 20 a second, each with its syncs.
const (
	checkpointBusy = 50 * time.Millisecond
	checkpointIdle = 250 * time.Millisecond
)

// nextCheckpoint is the wait before the next look at the WAL, after a wait
// of last whose look found the WAL changed or not.
func nextCheckpoint(last time.Duration, changed bool) time.Duration {
	if changed {
		return checkpointBusy
	}
	return min(2*last, checkpointIdle)
}

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
		wait := checkpointBusy
		t := time.NewTimer(wait)
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
			changed := err == nil && !fi.ModTime().Equal(seen)
			wait = nextCheckpoint(wait, changed)
			if changed {
				seen = fi.ModTime()
				var busy, logPages, done int
				if err := c.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &done); err != nil && ctx.Err() == nil {
					db.Logger.Warn("sqlite checkpoint failed; the writer's own checkpoint remains as a backstop", "path", db.Path, "error", err)
				}
			}
			// From the end of the checkpoint: a long one is not followed
			// by another at once.
			t.Reset(wait)
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
