package migration

import (
	"testing"
	"testing/fstest"
)

func TestReadOrdersAndRefusesMistakes(t *testing.T) {
	ms, err := Read(fstest.MapFS{
		"0002_more.sql":   {Data: []byte("B")},
		"0001_create.sql": {Data: []byte("A")},
		"README.md":       {Data: []byte("ignored")},
	})
	if err != nil || len(ms) != 2 || ms[0] != (Migration{1, "create", "A"}) || ms[1] != (Migration{2, "more", "B"}) {
		t.Fatalf("Read: %+v, %v", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"a gap":       {"0001_a.sql": {}, "0003_c.sql": {}},
		"a bad name":  {"0001_a.sql": {}, "2_b.sql": {}},
		"no first":    {"0002_b.sql": {}},
		"a duplicate": {"0001_a.sql": {}, "0001_b.sql": {}},
	} {
		if _, err := Read(fsys); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
