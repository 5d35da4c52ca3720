package pgdb

import (
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// uuid.UUID implements driver.Valuer as a string, so pgx would format
// every id as text and the server would parse it back: a fifth of the
// client's time on the step path. These plans hand pgx the bytes instead,
// in the binary format, with its fast path for [16]byte and [][16]byte.

// registerUUID makes m encode uuid.UUID and []uuid.UUID as bytes.
func registerUUID(m *pgtype.Map) {
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
