package sqlite

import (
	"fmt"
	"strconv"

	"github.com/google/uuid"
)

// transitionRow is a transition made in a transaction, written at its
// commit.
type transitionRow struct {
	task      uuid.UUID
	taskID    string
	stepID    string // "" for a transition of the task itself
	from, to  string
	event     string
	at        int64
	processor string
}

// logRow is one row of the transition log: the transitions a transaction
// made to one task, packed (migration 0005_packed_transitions.sql describes
// the format).
type logRow struct {
	taskID    string
	seq       int64 // the number of its first entry
	processor string
	entries   []byte // JSON array, without its closing bracket until written
}

// flushTransitions writes the transitions of this transaction, one log row
// per task: a transaction that touches ten tasks with fifty transitions
// inserts ten rows. A task's transitions of another processor, which no
// caller makes in one transaction today, start a row of their own, so that
// a row's entries are consecutive in the task's log.
func (t *tx) flushTransitions() error {
	if len(t.trans) == 0 {
		return nil
	}
	rows := make([]logRow, 0, len(t.rows))
	last := make(map[uuid.UUID]int, len(t.rows)) // a task's row in rows
	for _, r := range t.trans {
		tr := t.rows[r.task]
		if tr.seq < 0 { // read from the database: continue its log
			if err := t.stmt(t.s.w.lastSeq).QueryRowContext(t.ctx, r.taskID).Scan(&tr.seq); err != nil {
				return fmt.Errorf("store: record transitions: task %s: %w", r.taskID, err)
			}
		}
		tr.seq++
		i, ok := last[r.task]
		if !ok || rows[i].processor != r.processor {
			rows = append(rows, logRow{taskID: r.taskID, seq: tr.seq, processor: r.processor, entries: make([]byte, 1, 512)})
			rows[len(rows)-1].entries[0] = '['
			i = len(rows) - 1
			last[r.task] = i
		} else {
			rows[i].entries = append(rows[i].entries, ',')
		}
		rows[i].entries = appendEntry(rows[i].entries, &r)
	}
	t.trans = nil
	values := make([][]any, len(rows))
	for i := range rows {
		r := &rows[i]
		values[i] = []any{r.taskID, r.seq, r.processor, string(append(r.entries, ']'))}
	}
	if err := t.s.w.transitionInsert.exec(t.ctx, t.stmt, values); err != nil {
		return fmt.Errorf("store: record transitions: %w", err)
	}
	return nil
}

// appendEntry appends a transition as a JSON array [step_id, from_state,
// to_state, event, at], with null for a task's own transition.
func appendEntry(b []byte, r *transitionRow) []byte {
	b = append(b, '[')
	if r.stepID == "" {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, r.stepID)
	}
	b = append(b, ',')
	b = appendJSONString(b, r.from)
	b = append(b, ',')
	b = appendJSONString(b, r.to)
	b = append(b, ',')
	b = appendJSONString(b, r.event)
	b = append(b, ',')
	b = strconv.AppendInt(b, r.at, 10)
	return append(b, ']')
}

// appendJSONString appends s as a JSON string. The values logged are state
// and event names and UUIDs, but any string comes out valid: quotes,
// backslashes and control characters are escaped (RFC 8259, section 7), and
// other bytes are copied, as SQLite's JSON functions read them.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
