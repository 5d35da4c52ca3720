package pgdb

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// uuid.UUID implements driver.Valuer as a string, so pgx would format
// every id as text and the server would parse it back: a fifth of the
// client's time on the step path. tryWrapUUID hands pgx the bytes instead,
// as [16]byte and [][16]byte, wherever a codec other than ours (below)
// gets an id.

// registerTypes makes m read and write ids as bytes (registerUUIDScan,
// and tryWrapUUID where another codec than ours gets an id) and write the
// store's arrays and times itself (registerArrays).
func registerTypes(m *pgtype.Map) {
	registerUUIDScan(m)
	registerArrays(m)
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapUUID}, m.TryWrapEncodePlanFuncs...)
}

func tryWrapUUID(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	switch v := value.(type) {
	case uuid.UUID:
		return &uuidPlan{}, [16]byte(v), true
	case []uuid.UUID:
		return &uuidSlicePlan{}, uuidBytes(v), true
	}
	return nil, nil, false
}

type uuidPlan struct{ next pgtype.EncodePlan }

func (p *uuidPlan) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *uuidPlan) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode([16]byte(value.(uuid.UUID)), buf)
}

type uuidSlicePlan struct{ next pgtype.EncodePlan }

func (p *uuidSlicePlan) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *uuidSlicePlan) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode(uuidBytes(value.([]uuid.UUID)), buf)
}

// uuidBytes converts ids; nil stays nil (SQL NULL).
func uuidBytes(ids []uuid.UUID) [][16]byte {
	if ids == nil {
		return nil
	}
	out := make([][16]byte, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// uuid.UUID implements sql.Scanner too, and pgx prefers a Scanner to any
// wrapping: each id read would come as text and be parsed back
// (uuid.Parse). uuidCodec reads the binary format's 16 bytes into
// *uuid.UUID directly, and writes a uuid.UUID's without the wrapping
// above (which boxes the id); every other value goes to pgx's own codec.
// It is registered for uuid (and serves uuid[]'s elements).
type uuidCodec struct{ valueCodec[uuid.UUID] }

func (c uuidCodec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*uuid.UUID); ok && format == pgtype.BinaryFormatCode {
		return scanUUID{}
	}
	return c.Codec.PlanScan(m, oid, format, target)
}

type scanUUID struct{}

func (scanUUID) Scan(src []byte, dst any) error {
	if src == nil {
		// The nil id. (uuid.UUID's Scan, the plan pgx would take, left
		// the destination as it was; no reader of ours counts on that:
		// each scans into a fresh or zeroed id.)
		*dst.(*uuid.UUID) = uuid.Nil
		return nil
	}
	if len(src) != 16 {
		return fmt.Errorf("invalid length for uuid: %d", len(src))
	}
	copy(dst.(*uuid.UUID)[:], src)
	return nil
}

// registerUUIDScan registers uuidCodec for uuid in m.
func registerUUIDScan(m *pgtype.Map) {
	put := func(b []byte, id uuid.UUID) []byte { return append(b, id[:]...) }
	m.RegisterType(&pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: uuidCodec{valueCodec[uuid.UUID]{pgtype.UUIDCodec{}, put}}})
}
