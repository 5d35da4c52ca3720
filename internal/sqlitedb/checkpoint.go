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
//
// Under load a passive checkpoint rarely copies the whole WAL (the writer
// appends while it copies), and SQLite syncs the database file only after
// one that did, so until then every page the checkpointer copies stays
// dirty; the writer's backstop (autoCheckpointPages), which completes
// because nothing writes during it, then synced them all in the writer's
// commit: a WAL and a database fsync of 7–10 ms together, every third of
// a second at half the saturation rate (perf trace). The checkpointer
// therefore syncs the database file itself after each checkpoint that
// copied frames (checkpoint), so that the writer's sync finds little to
// write: its database fsync took 1.3–2.8 ms instead of about 4.5, and the
// p99 at half load fell to 0.85× for linear tasks (docs/benchmarks.md,
// "The checkpointer syncs what it copies").
func (db *DB) startCheckpointer(syncMode string) error {
	c, err := sql.Open("sqlite", dsn(db.Path, roleCheckpointer, syncMode))
	if err != nil {
		return fmt.Errorf("open database %q: checkpointer: %w", db.Path, err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	// The file the checkpointer syncs. Without it (a platform that will
	// not sync a file opened to read), the writer's checkpoint syncs as
	// before.
	f, ferr := os.Open(db.Path)
	if ferr != nil {
		db.Logger.Debug("sqlite checkpointer: the database file is not synced after each checkpoint", "path", db.Path, "error", ferr)
		f = nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	db.ckpt, db.ckptStop, db.ckptDone = c, cancel, make(chan struct{})
	go func() {
		defer close(db.ckptDone)
		if f != nil {
			defer f.Close()
		}
		wait := checkpointBusy
		t := time.NewTimer(wait)
		defer t.Stop()
		var (
			seen time.Time // the WAL's modification time at the last checkpoint
			cp   ckptState
		)
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
				if _, err := cp.run(ctx, c, f); err != nil && ctx.Err() == nil {
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

// ckptState is what the checkpointer remembers between checkpoints: the
// WAL's frames copied back so far, as the last one reported them.
type ckptState struct{ backfilled int }

// run runs one passive checkpoint on c and, when it copied frames into the
// database file, syncs f, that file (nil: no sync). It reports whether it
// synced; a failed sync is an error, the checkpoint's frames staying for
// the writer's checkpoint to sync.
func (cp *ckptState) run(ctx context.Context, c *sql.DB, f *os.File) (synced bool, err error) {
	var busy, logPages, backfilled int
	if err := c.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logPages, &backfilled); err != nil {
		return false, err
	}
	// backfilled counts the frames copied since the WAL last started over:
	// more than last time, or fewer (the WAL started over, and frames were
	// copied since), means this checkpoint copied some.
	copied := backfilled > 0 && backfilled != cp.backfilled
	cp.backfilled = backfilled
	if !copied || f == nil {
		return false, nil
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("sync the database file after a checkpoint: %w", err)
	}
	return true, nil
}

func (db *DB) stopCheckpointer() error {
	if db.ckpt == nil {
		return nil
	}
	db.ckptStop()
	<-db.ckptDone
	return db.ckpt.Close()
}
