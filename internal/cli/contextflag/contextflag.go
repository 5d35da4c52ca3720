// Package contextflag parses the --context flag of the tasker command: a
// task's context given on the command line as a JSON object.
//
// It is a package of its own so that its fuzz target links only the
// standard library: a fuzzing build instruments every package it links, and
// each execution resets and scans one coverage counter per instrumented
// branch, so fuzzing it inside package cli (which links the engine, SQLite
// and PostgreSQL drivers) spent most of each execution on the counters.
package contextflag

import (
	"encoding/json"
	"fmt"
)

// Parse returns s as a raw JSON object, or an error naming the --context
// flag, saying why s is not an object and showing one.
func Parse(s string) (json.RawMessage, error) {
	var obj map[string]any
	if err := json.Unmarshal([]byte(s), &obj); err != nil || obj == nil {
		why := "it is not a JSON object"
		if err != nil {
			why = err.Error()
		}
		return nil, fmt.Errorf("--context %q is not a valid JSON object (%s): pass an object such as '{\"value\": 3}'", s, why)
	}
	return json.RawMessage(s), nil
}
