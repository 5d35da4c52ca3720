package rowscan

import (
	"errors"
	"testing"
)

type fakeRows struct {
	vals    []int
	i       int
	scanErr error
	err     error
}

func (r *fakeRows) Next() bool { r.i++; return r.i <= len(r.vals) }
func (r *fakeRows) Scan(dest ...any) error {
	if r.scanErr != nil {
		return r.scanErr
	}
	*dest[0].(*int) = r.vals[r.i-1]
	return nil
}
func (r *fakeRows) Err() error { return r.err }

func scanInt(r Rows) (int, error) {
	var v int
	err := r.Scan(&v)
	return v, err
}

func TestAll(t *testing.T) {
	got, err := All("op", &fakeRows{vals: []int{3, 1, 2}}, scanInt)
	if err != nil || len(got) != 3 || got[0] != 3 || got[1] != 1 || got[2] != 2 {
		t.Fatalf("All = %v, %v; want [3 1 2]", got, err)
	}
	boom := errors.New("boom")
	if _, err := All("read x", &fakeRows{vals: []int{1}, scanErr: boom}, scanInt); !errors.Is(err, boom) || err.Error() != "store: read x: boom" {
		t.Fatalf("scan error = %v", err)
	}
	if _, err := All("read y", &fakeRows{err: boom}, scanInt); !errors.Is(err, boom) || err.Error() != "store: read y: boom" {
		t.Fatalf("rows error = %v", err)
	}
}

func TestEach(t *testing.T) {
	sum := 0
	err := Each("op", &fakeRows{vals: []int{3, 1, 2}}, func(r Rows) error {
		v, err := scanInt(r)
		sum += v
		return err
	})
	if err != nil || sum != 6 {
		t.Fatalf("Each: sum %d, %v; want 6", sum, err)
	}
	boom := errors.New("boom")
	if err := Each("read z", &fakeRows{vals: []int{1}, scanErr: boom}, func(r Rows) error { _, err := scanInt(r); return err }); !errors.Is(err, boom) || err.Error() != "store: read z: boom" {
		t.Fatalf("scan error = %v", err)
	}
}
