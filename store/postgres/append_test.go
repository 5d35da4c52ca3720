package postgres

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// TestAppendPacked: a packed transition written by appendPacked is what
// json.Marshal writes for it (byte for byte where the strings are plain,
// and the same value read back where they need escaping), with the step
// omitted for the task's own.
func TestAppendPacked(t *testing.T) {
	odd := []string{"", "in_progress", "q\"uote", `back\slash`, "tab\t", "ünï", "\x00\x1f\x7f", "<&>", "\xff bad utf-8"}
	for _, step := range []uuid.UUID{uuid.Nil, uuid.New(), uuid.MustParse("ffffffff-0000-0000-0000-00000000000a")} {
		for _, s := range odd {
			for _, a := range []int64{0, -1, math.MaxInt64, math.MinInt64, time.Now().UnixMicro()} {
				p := packedTransition{Step: step, From: s, To: "complete", Event: s, At: a}
				got := appendPacked([]byte("prefix"), p)
				if string(got[:6]) != "prefix" {
					t.Fatalf("the prefix was overwritten: %q", got)
				}
				got = got[6:]
				want, err := json.Marshal(p)
				if err != nil {
					t.Fatal(err)
				}
				var back, wantBack packedTransition
				if err := json.Unmarshal(got, &back); err != nil {
					t.Fatalf("%q is not JSON: %v", got, err)
				}
				_ = json.Unmarshal(want, &wantBack)
				if back != wantBack {
					t.Fatalf("%+v: read back %+v from %s, json.Marshal's reads %+v", p, back, got, wantBack)
				}
				if plain := s == "" || s == "in_progress"; plain && string(got) != string(want) {
					t.Fatalf("%+v: got %s, json.Marshal writes %s", p, got, want)
				}
			}
		}
	}
}

// TestInsertTransitionsPacks: the statement's rows hold each task's first
// transition in their columns and the rest, in order, in more; a processor
// change or the bound starts a new row.
func TestInsertTransitionsPacks(t *testing.T) {
	a, b, st := uuid.New(), uuid.New(), uuid.New()
	at := time.Unix(1_700_000_000, 123_456_789)
	var rows []transitionRow
	add := func(task, step uuid.UUID, to, proc string) {
		rows = append(rows, transitionRow{taskID: task, stepID: step, from: "x", to: to, event: "e", at: at, processor: proc})
		at = at.Add(time.Microsecond)
	}
	add(a, uuid.Nil, "t1", "p")
	add(b, st, "b1", "p")
	add(a, st, "t2", "p")
	add(a, uuid.Nil, "t3", "other")
	add(b, st, "b2", "p")
	add(a, st, "t4", "other")
	add(uuid.New(), uuid.Nil, "alone", "p")
	for range maxPackedTransitions {
		add(b, st, "bulk", "p")
	}
	args := insertTransitions(rows).Args
	tasks, tos, mores := args[0].([]uuid.UUID), args[3].([]string), args[7].([][]byte)
	wantTasks := []uuid.UUID{a, b, a, tasks[3], b}
	if !slices.Equal(tasks, wantTasks) || !slices.Equal(tos, []string{"t1", "b1", "t3", "alone", "bulk"}) {
		t.Fatalf("rows: tasks %v, to %v; want %v, [t1 b1 t3 alone bulk]", tasks, tos, wantTasks)
	}
	var more [][]packedTransition
	for i, m := range mores {
		var p []packedTransition
		if m != nil {
			if err := json.Unmarshal(m, &p); err != nil {
				t.Fatalf("row %d: more %q: %v", i, m, err)
			}
		}
		more = append(more, p)
	}
	tos2 := func(ps []packedTransition) (out []string) {
		for _, p := range ps {
			out = append(out, p.To)
		}
		return out
	}
	if got := tos2(more[0]); !slices.Equal(got, []string{"t2"}) || more[0][0].Step != st {
		t.Fatalf("row 0 more: %+v", more[0])
	}
	if got := tos2(more[1]); len(got) != maxPackedTransitions-1 || got[0] != "b2" || got[1] != "bulk" {
		t.Fatalf("row 1 holds %d more (want %d), starting %v", len(got), maxPackedTransitions-1, got[:2])
	}
	if got := tos2(more[2]); !slices.Equal(got, []string{"t4"}) {
		t.Fatalf("row 2 more: %v", got)
	}
	// Row 1 is full at b1, b2 and 1,022 of the bulk: the last two start
	// row 3.
	if got := tos2(more[4]); !slices.Equal(got, []string{"bulk"}) {
		t.Fatalf("row 4 more: %v", got)
	}
	if mores[3] != nil {
		t.Fatalf("row 3 has one transition, but more %q", mores[3])
	}
	if more[0][0].At != at.Add(-time.Duration(maxPackedTransitions+5)*time.Microsecond).UnixMicro() {
		t.Fatalf("row 0's second transition at %d", more[0][0].At)
	}
}

// TestScanRefusesWhatPgxRefused: the helpers refuse a NULL in a text
// column and an infinite time, as pgx did for a *string and a *time.Time;
// repeated texts come back as the same values (through the scanners on
// PostgreSQL: TestScannersRefuseInfiniteTimes).
func TestScanRefusesWhatPgxRefused(t *testing.T) {
	var s string
	c := textCol{dst: &s}
	if err := c.ScanBytes(nil); err == nil {
		t.Fatal("NULL into a text column: no error")
	}
	for _, v := range []string{"pending", "", "pending", "complete"} {
		if err := c.ScanBytes([]byte(v)); err != nil || s != v {
			t.Fatalf("%q: got %q, %v", v, s, err)
		}
	}
	for _, inf := range []pgtype.InfinityModifier{pgtype.Infinity, pgtype.NegativeInfinity} {
		if _, err := timestamptzOf(pgtype.Timestamptz{InfinityModifier: inf, Valid: true}); err == nil {
			t.Fatalf("%v: no error", inf)
		}
	}
	at := time.Date(1999, 12, 31, 23, 0, 0, 1000, time.FixedZone("x", 3600))
	if got, err := timestamptzOf(pgtype.Timestamptz{Time: at, Valid: true}); err != nil || !got.Equal(at) || got.Location() != time.UTC {
		t.Fatalf("got %v, %v; want %v in UTC", got, err, at)
	}
	if got, err := timestamptzOf(pgtype.Timestamptz{}); err != nil || !got.IsZero() {
		t.Fatalf("NULL: got %v, %v; want the zero time", got, err)
	}
}
