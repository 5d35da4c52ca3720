//go:build unix

package sqlitedb

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// processLock is an exclusive flock on Path+".lock", held while the database
// is open, so that two processes never run the embedded engine on one file.
// The lock file holds the pid of its holder. The kernel drops the lock when
// the process dies, however it dies.
type processLock struct {
	f *os.File
}

func acquireLock(dbPath string) (*processLock, error) {
	path := dbPath + ".lock"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, badPath(dbPath, "lock file: %v: fix the directory's permissions or choose another --db path", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		defer f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open database %q: lock %q: %w", dbPath, path, err)
		}
		holder := "another process"
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n]))); err == nil && pid > 0 {
			holder = fmt.Sprintf("process %d", pid)
			if pid == os.Getpid() {
				holder = fmt.Sprintf("this process (pid %d)", pid)
			}
		}
		return nil, fmt.Errorf("open database %q: %s holds its lock %q: stop that process or choose another --db path: %w",
			dbPath, holder, path, ErrLocked)
	}
	pid := strconv.Itoa(os.Getpid()) + "\n"
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(pid), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open database %q: write lock %q: %w", dbPath, path, err)
	}
	return &processLock{f: f}, nil
}

// release empties the lock file and unlocks it. The file stays: removing it
// would race with a process that has just opened it to take the lock.
func (l *processLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	_ = f.Truncate(0)
	return f.Close()
}

func writable(path string) bool {
	return syscall.Access(path, 0x2 /* W_OK */) == nil
}
