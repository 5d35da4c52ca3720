package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/tasker-go/tasker/internal/api/gen"
)

// fieldsOf lists the JSON names of a generated body type's fields.
func fieldsOf(v any) []string {
	var names []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// The fields each strict body may carry: the spec's, nothing else.
var (
	taskRequestFields = fieldsOf(gen.TaskRequest{})
	dlqUpdateFields   = fieldsOf(gen.UpdateInvestigationRequest{})
	stepActionFields  = map[string][]string{
		string(gen.ResetForRetry):    append(fieldsOf(gen.StepManualAction0{}), "action_type"),
		string(gen.ResolveManually):  append(fieldsOf(gen.StepManualAction1{}), "action_type"),
		string(gen.CompleteManually): append(fieldsOf(gen.StepManualAction2{}), "action_type"),
	}
)

// strictFields answers 400 to a JSON body of POST /v1/tasks, PATCH
// /v1/dlq/entry/{uuid} or PATCH .../workflow_steps/{step_uuid} that carries
// a field the spec does not define, naming it: a misspelt field would
// otherwise be dropped without a word. Other requests pass untouched.
func (s *Server) strictFields(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed func(map[string]json.RawMessage) []string
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/tasks":
			allowed = func(map[string]json.RawMessage) []string { return taskRequestFields }
		case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/v1/dlq/entry/"):
			allowed = func(map[string]json.RawMessage) []string { return dlqUpdateFields }
		case r.Method == http.MethodPatch && strings.Contains(r.URL.Path, "/workflow_steps/"):
			allowed = func(m map[string]json.RawMessage) []string {
				var at string
				_ = json.Unmarshal(m["action_type"], &at)
				return stepActionFields[at] // none for an unknown action: the handler names it
			}
		default:
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			s.requestError(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil { // not an object: the decoder says what is wrong
			if fields := allowed(m); fields != nil {
				for k := range m {
					if !slices.Contains(fields, k) {
						writeError(w, http.StatusBadRequest, "BadRequest",
							"unknown field "+strconvQuote(k)+" in the request body: the fields are "+strings.Join(fields, ", "))
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
