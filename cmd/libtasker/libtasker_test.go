package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shared library, built as `make libtasker` builds it, driven by a
// Python host through ctypes (testdata/smoke.py): open, register as a pull
// worker, create tasks, four host threads polling and completing at once,
// cleanup, stop, and bad input answered as error values. CI runs it (Python
// 3 and a C compiler are on the machine).
func TestSharedLibraryFromPython(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a shared library (-short)")
	}
	for _, tool := range []string{"python3", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to build and load the shared library: %v", tool, err)
		}
	}
	dir := t.TempDir()
	lib := filepath.Join(dir, "libtasker.so")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", lib, ".")
	build.Env = append(build.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildmode=c-shared: %v\n%s", err, out)
	}
	out, err := exec.Command("python3", "testdata/smoke.py", lib, t.TempDir()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("smoke.py: %v\n%s", err, out)
	}
}
