package pgdb

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// The store sends a batch of rows as one array per column (unnest), so
// every statement of the hot path binds arrays. pgx encodes a Go slice
// through its generic ArrayCodec, which boxes each element into an `any`
// and plans it on its own: one to three allocations per element, a fifth
// of the objects the worker allocates per step. arrayCodec writes the
// slices the store binds (ids, text, times, integers, JSON) in the binary
// array format itself, byte for byte what pgx would write
// (TestArraysAsPgx), and leaves everything else to pgx.

// registerArrays registers arrayCodec for the array types the store binds,
// and a valueCodec for timestamptz.
func registerArrays(m *pgtype.Map) {
	if t, ok := m.TypeForOID(pgtype.TimestamptzOID); ok {
		m.RegisterType(&pgtype.Type{Name: t.Name, OID: t.OID, Codec: valueCodec[time.Time]{t.Codec, appendTimestamptz}})
	}
	for _, a := range []struct {
		name      string
		oid, elem uint32
	}{
		{"_uuid", pgtype.UUIDArrayOID, pgtype.UUIDOID},
		{"_text", pgtype.TextArrayOID, pgtype.TextOID},
		{"_timestamptz", pgtype.TimestamptzArrayOID, pgtype.TimestamptzOID},
		{"_int4", pgtype.Int4ArrayOID, pgtype.Int4OID},
		{"_int8", pgtype.Int8ArrayOID, pgtype.Int8OID},
		{"_json", pgtype.JSONArrayOID, pgtype.JSONOID},
		{"_bytea", pgtype.ByteaArrayOID, pgtype.ByteaOID},
	} {
		elem, ok := m.TypeForOID(a.elem)
		if !ok {
			continue
		}
		m.RegisterType(&pgtype.Type{Name: a.name, OID: a.oid, Codec: arrayCodec{&pgtype.ArrayCodec{ElementType: elem}}})
	}
}

// valueCodec is a pgx codec, but for a T in the binary format, which put
// writes without boxing it (pgx wraps a time.Time or a uuid.UUID
// parameter in a value of its own).
type valueCodec[T any] struct {
	pgtype.Codec
	put func([]byte, T) []byte
}

func (c valueCodec[T]) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(T); ok && format == pgtype.BinaryFormatCode {
		return valuePlan[T](c.put)
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

type valuePlan[T any] func([]byte, T) []byte

func (valuePlan[T]) ours() {}

func (p valuePlan[T]) Encode(value any, buf []byte) ([]byte, error) {
	return p(buf, value.(T)), nil
}

// arrayCodec is pgx's ArrayCodec with its own encoding of the slices
// flatEncoder knows, in the binary format.
type arrayCodec struct{ *pgtype.ArrayCodec }

func (c arrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		if p := flatEncoder(c.ElementType.OID, value); p != nil {
			return p
		}
	}
	return c.ArrayCodec.PlanEncode(m, oid, format, value)
}

func (c arrayCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if ids, ok := target.(*[]uuid.UUID); ok && format == pgtype.BinaryFormatCode && c.ElementType.OID == pgtype.UUIDOID {
		// pgx's own plan for the slice, as a pgtype.FlatArray (the
		// same type underneath, which pgx reads without reflection).
		if next := c.ArrayCodec.PlanScan(m, oid, format, (*pgtype.FlatArray[uuid.UUID])(ids)); next != nil {
			return scanUUIDs{next}
		}
	}
	return c.ArrayCodec.PlanScan(m, oid, format, target)
}

// scanUUIDs reads a one-dimensional uuid[] without NULLs (a step's
// dependencies) into a []uuid.UUID directly: pgx reads a slice of a type
// of its own through reflection, an allocation per element. Anything else
// (NULL elements, more dimensions) goes to pgx's plan for a
// pgtype.FlatArray.
type scanUUIDs struct{ next pgtype.ScanPlan }

func (p scanUUIDs) Scan(src []byte, dst any) error {
	out := dst.(*[]uuid.UUID)
	if src == nil {
		*out = nil
		return nil
	}
	pgx := func() error { return p.next.Scan(src, (*pgtype.FlatArray[uuid.UUID])(out)) }
	if len(src) < 12 {
		return pgx()
	}
	be := binary.BigEndian
	ndim, hasNull := be.Uint32(src), be.Uint32(src[4:])
	if ndim == 0 && len(src) == 12 {
		*out = []uuid.UUID{}
		return nil
	}
	if ndim != 1 || hasNull != 0 || len(src) < 20 {
		return pgx()
	}
	n := int(be.Uint32(src[12:]))
	body := src[20:]
	if n < 0 || n > len(body)/20 || len(body) != n*20 {
		return pgx()
	}
	ids := make([]uuid.UUID, n)
	for i := range ids {
		e := body[20*i:]
		if be.Uint32(e) != 16 {
			return pgx()
		}
		copy(ids[i][:], e[4:20])
	}
	*out = ids
	return nil
}

// flatEncoder returns the plan for a slice of value's type as an array of
// elements of type elem, or nil when it has none.
func flatEncoder(elem uint32, value any) pgtype.EncodePlan {
	switch elem {
	case pgtype.UUIDOID:
		if _, ok := value.([]uuid.UUID); ok {
			return flatPlan[uuid.UUID]{elem, func(b []byte, v uuid.UUID) ([]byte, bool) { return append(b, v[:]...), true }}
		}
	case pgtype.TextOID:
		switch value.(type) {
		case []string:
			return flatPlan[string]{elem, func(b []byte, v string) ([]byte, bool) { return append(b, v...), true }}
		case []*string:
			return flatPlan[*string]{elem, func(b []byte, v *string) ([]byte, bool) {
				if v == nil {
					return b, false
				}
				return append(b, *v...), true
			}}
		}
	case pgtype.TimestamptzOID:
		switch value.(type) {
		case []time.Time:
			return flatPlan[time.Time]{elem, func(b []byte, v time.Time) ([]byte, bool) { return appendTimestamptz(b, v), true }}
		case []*time.Time:
			return flatPlan[*time.Time]{elem, func(b []byte, v *time.Time) ([]byte, bool) {
				if v == nil {
					return b, false
				}
				return appendTimestamptz(b, *v), true
			}}
		}
	case pgtype.Int4OID:
		if _, ok := value.([]int32); ok {
			return flatPlan[int32]{elem, func(b []byte, v int32) ([]byte, bool) { return binary.BigEndian.AppendUint32(b, uint32(v)), true }}
		}
	case pgtype.Int8OID:
		if _, ok := value.([]int64); ok {
			return flatPlan[int64]{elem, func(b []byte, v int64) ([]byte, bool) { return binary.BigEndian.AppendUint64(b, uint64(v)), true }}
		}
	case pgtype.JSONOID, pgtype.ByteaOID:
		// json's binary format is its text; a nil element is NULL, as pgx
		// has it.
		if _, ok := value.([][]byte); ok {
			return flatPlan[[]byte]{elem, func(b []byte, v []byte) ([]byte, bool) {
				if v == nil {
					return b, false
				}
				return append(b, v...), true
			}}
		}
	}
	return nil
}

// flatPlan writes a []T as a one-dimensional array with lower bound 1;
// put appends an element's bytes, or reports false for NULL. A nil slice
// is NULL, an empty one an array of no elements.
type flatPlan[T any] struct {
	elem uint32
	put  func([]byte, T) ([]byte, bool)
}

// ours marks the package's plans (TestArraysAsPgx).
func (flatPlan[T]) ours() {}

func (p flatPlan[T]) Encode(value any, buf []byte) ([]byte, error) {
	vs := value.([]T)
	if vs == nil {
		return nil, nil
	}
	// ndim, has-null (set below), the element type, then the dimension:
	// its length and lower bound.
	buf = binary.BigEndian.AppendUint32(buf, 1)
	hasNull := len(buf)
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint32(buf, p.elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(vs)))
	buf = binary.BigEndian.AppendUint32(buf, 1)
	for _, v := range vs {
		at := len(buf)
		buf = binary.BigEndian.AppendUint32(buf, 0)
		var ok bool
		if buf, ok = p.put(buf, v); !ok {
			binary.BigEndian.PutUint32(buf[at:], math.MaxUint32) // -1: NULL
			binary.BigEndian.PutUint32(buf[hasNull:], 1)
			continue
		}
		binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
	}
	return buf, nil
}

// appendTimestamptz appends t as microseconds since 2000-01-01 UTC, as pgx
// does for a finite time (the sub-microsecond part truncated).
func appendTimestamptz(b []byte, t time.Time) []byte {
	const y2k = 946684800 * 1000000 // 2000-01-01 in microseconds since 1970
	us := t.Unix()*1000000 + int64(t.Nanosecond())/1000 - y2k
	return binary.BigEndian.AppendUint64(b, uint64(us))
}
