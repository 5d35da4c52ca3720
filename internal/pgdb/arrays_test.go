package pgdb

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// arrayCases are values of every slice type flatEncoder knows, with the
// array type each is bound to: nil and empty slices, NULL elements,
// extremes, times in other zones, before 1970 and with nanoseconds.
func arrayCases(r *rand.Rand) []struct {
	oid   uint32
	value any
} {
	ids := make([]uuid.UUID, 1+r.IntN(40))
	for i := range ids {
		ids[i] = uuid.New()
	}
	zone := time.FixedZone("x", -5*3600-1800)
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(-1, 999), time.Date(1969, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Now(), time.Now().In(zone),
		time.Unix(r.Int64N(1<<40)-1<<39, r.Int64N(1e9)),
	}
	ptrTimes := []*time.Time{nil}
	for i := range times {
		ptrTimes = append(ptrTimes, &times[i], nil)
	}
	s1, s2 := "", "ünïcødé \"quoted\" {braces}, commas\\"
	long := strings.Repeat("x", 70_000)
	type c = struct {
		oid   uint32
		value any
	}
	return []c{
		{pgtype.UUIDArrayOID, ids}, {pgtype.UUIDArrayOID, []uuid.UUID{}}, {pgtype.UUIDArrayOID, []uuid.UUID(nil)},
		{pgtype.TextArrayOID, []string{"pending", s1, s2, long}}, {pgtype.TextArrayOID, []string{}}, {pgtype.TextArrayOID, []string(nil)},
		{pgtype.TextArrayOID, []*string{&s1, nil, &s2}}, {pgtype.TextArrayOID, []*string{nil}}, {pgtype.TextArrayOID, []*string(nil)},
		{pgtype.TimestamptzArrayOID, times}, {pgtype.TimestamptzArrayOID, []time.Time(nil)},
		{pgtype.TimestamptzArrayOID, ptrTimes}, {pgtype.TimestamptzArrayOID, []*time.Time{}},
		{pgtype.Int4ArrayOID, []int32{0, 1, -1, math.MaxInt32, math.MinInt32, r.Int32()}}, {pgtype.Int4ArrayOID, []int32(nil)},
		{pgtype.Int8ArrayOID, []int64{0, -1, math.MaxInt64, math.MinInt64, r.Int64()}}, {pgtype.Int8ArrayOID, []int64{}},
		{pgtype.JSONArrayOID, [][]byte{[]byte(`{"a":1}`), nil, {}, []byte(`"ü"`)}}, {pgtype.JSONArrayOID, [][]byte(nil)},
		{pgtype.ByteaArrayOID, [][]byte{{0, 1, 255}, nil, {}}},
		{pgtype.UUIDOID, ids[0]}, {pgtype.UUIDOID, uuid.Nil},
		{pgtype.TimestamptzOID, times[5]}, {pgtype.TimestamptzOID, times[6]}, {pgtype.TimestamptzOID, time.Time{}},
	}
}

// TestArraysAsPgx: the codecs registered here write every value the bytes
// pgx's own map writes for it, in the binary format, and take the plan of
// their own (not pgx's) for each.
func TestArraysAsPgx(t *testing.T) {
	ours, theirs := pgtype.NewMap(), pgtype.NewMap()
	registerTypes(ours)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		for _, c := range arrayCases(r) {
			want, err := theirs.Encode(c.oid, pgtype.BinaryFormatCode, c.value, nil)
			if err != nil {
				t.Fatalf("pgx: %T to %d: %v", c.value, c.oid, err)
			}
			got, err := ours.Encode(c.oid, pgtype.BinaryFormatCode, c.value, nil)
			if err != nil {
				t.Fatalf("%T to %d: %v", c.value, c.oid, err)
			}
			if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
				t.Fatalf("%T to %d: got %x (nil %v), pgx writes %x (nil %v)", c.value, c.oid, got, got == nil, want, want == nil)
			}
			if p := ours.PlanEncode(c.oid, pgtype.BinaryFormatCode, c.value); !isOurs(p) {
				t.Fatalf("%T to %d: pgx's plan %T, not one of ours", c.value, c.oid, p)
			}
		}
	}
}

func isOurs(p pgtype.EncodePlan) bool {
	_, ok := p.(interface{ ours() })
	return ok
}

// TestUUIDScan: ids read in the binary format come back as they were,
// nullable ones as nil, a NULL into a plain id as the nil id (where
// uuid.UUID's Scan left the destination as it was), and a short one is an
// error.
func TestUUIDScan(t *testing.T) {
	m := pgtype.NewMap()
	registerTypes(m)
	id := uuid.New()
	var got uuid.UUID
	if err := m.PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, &got).Scan(id[:], &got); err != nil || got != id {
		t.Fatalf("scan %s: got %s, %v", id, got, err)
	}
	if err := m.PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, &got).Scan(nil, &got); err != nil || got != uuid.Nil {
		t.Fatalf("NULL into *uuid.UUID: got %s, %v; want the nil id", got, err)
	}
	if err := m.PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, &got).Scan(id[:15], &got); err == nil {
		t.Fatalf("15 bytes into *uuid.UUID: no error")
	}
	ptr := &id
	if err := m.PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, &ptr).Scan(nil, &ptr); err != nil || ptr != nil {
		t.Fatalf("NULL into **uuid.UUID: got %v, %v", ptr, err)
	}
	if err := m.PlanScan(pgtype.UUIDOID, pgtype.TextFormatCode, &got).Scan([]byte(id.String()), &got); err != nil || got != id {
		t.Fatalf("text scan %s: got %s, %v", id, got, err)
	}
}

// TestUUIDsScanAsPgx: uuid[] values read into []uuid.UUID by scanUUIDs
// come out as pgx's own plan reads them, for empty, NULL, NULL-holding,
// two-dimensional and malformed values alike (an error where pgx errs).
func TestUUIDsScanAsPgx(t *testing.T) {
	ours, theirs := pgtype.NewMap(), pgtype.NewMap()
	registerTypes(ours)
	enc := func(v any) []byte {
		b, err := theirs.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := uuid.New(), uuid.New()
	pa := &a
	srcs := [][]byte{
		nil, enc([]uuid.UUID{}), enc([]uuid.UUID{a}), enc([]uuid.UUID{a, b, a}),
		enc([]*uuid.UUID{pa, nil}), enc(pgtype.Array[[16]byte]{Elements: [][16]byte{a, b, b, a}, Dims: []pgtype.ArrayDimension{{Length: 2, LowerBound: 1}, {Length: 2, LowerBound: 1}}, Valid: true}),
		{0, 0, 0, 1}, enc([]uuid.UUID{a, b})[:30], append(enc([]uuid.UUID{a}), 0),
	}
	for i, src := range srcs {
		var got, want []uuid.UUID
		plan := ours.PlanScan(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, &got)
		if _, ok := plan.(scanUUIDs); !ok {
			t.Fatalf("the plan for *[]uuid.UUID is %T", plan)
		}
		errGot := plan.Scan(src, &got)
		errWant := theirs.PlanScan(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, &want).Scan(src, &want)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("case %d: error %v, pgx's %v", i, errGot, errWant)
		}
		if errGot == nil && (!slices.Equal(got, want) || (got == nil) != (want == nil)) {
			t.Fatalf("case %d: got %v (nil %v), pgx reads %v (nil %v)", i, got, got == nil, want, want == nil)
		}
	}
}

// FuzzUUIDsScan: whatever bytes come as a uuid[] in the binary format,
// scanUUIDs reads them as pgx's own plan does, or fails where it fails.
func FuzzUUIDsScan(f *testing.F) {
	theirs := pgtype.NewMap()
	for _, v := range []any{[]uuid.UUID{}, []uuid.UUID{uuid.New()}, []uuid.UUID{uuid.New(), uuid.New()}, []*uuid.UUID{nil}} {
		b, err := theirs.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, v, nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ours := pgtype.NewMap()
	registerTypes(ours)
	f.Fuzz(func(t *testing.T, src []byte) {
		var got, want []uuid.UUID
		errGot := ours.PlanScan(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, &got).Scan(src, &got)
		errWant := theirs.PlanScan(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, &want).Scan(src, &want)
		if (errGot == nil) != (errWant == nil) {
			t.Fatalf("%x: error %v, pgx's %v", src, errGot, errWant)
		}
		if errGot == nil && (!slices.Equal(got, want) || (got == nil) != (want == nil)) {
			t.Fatalf("%x: got %v, pgx reads %v", src, got, want)
		}
	})
}

// TestRegistered: the types the store binds and reads have the package's
// codecs, whatever order registerTypes registers them in.
func TestRegistered(t *testing.T) {
	m := pgtype.NewMap()
	registerTypes(m)
	arr, _ := m.TypeForOID(pgtype.UUIDArrayOID)
	a, ok := arr.Codec.(arrayCodec)
	if !ok {
		t.Fatalf("uuid[] has codec %T, want arrayCodec", arr.Codec)
	}
	if _, ok := a.ElementType.Codec.(uuidCodec); !ok {
		t.Fatalf("uuid[]'s element has codec %T, want uuidCodec", a.ElementType.Codec)
	}
	var ids []uuid.UUID
	if p := m.PlanScan(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, &ids); !isScanUUIDs(p) {
		t.Fatalf("uuid[] into []uuid.UUID: plan %T", p)
	}
	for _, oid := range []uint32{pgtype.TextArrayOID, pgtype.TimestamptzArrayOID, pgtype.Int4ArrayOID, pgtype.Int8ArrayOID, pgtype.JSONArrayOID, pgtype.ByteaArrayOID} {
		if typ, _ := m.TypeForOID(oid); typ == nil {
			t.Fatalf("OID %d: not registered", oid)
		} else if _, ok := typ.Codec.(arrayCodec); !ok {
			t.Fatalf("OID %d: codec %T, want arrayCodec", oid, typ.Codec)
		}
	}
}

func isScanUUIDs(p pgtype.ScanPlan) bool {
	_, ok := p.(scanUUIDs)
	return ok
}
