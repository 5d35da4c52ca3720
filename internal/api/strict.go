package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// strictFields answers 400 to a JSON body of PATCH /v1/dlq/entry/{uuid} or
// PATCH .../workflow_steps/{step_uuid} that carries a field the spec does
// not define, naming it: a misspelt field would otherwise be dropped
// without a word. Other requests pass untouched; POST /v1/tasks checks its
// fields as it decodes its body, once (createTaskServer).
func (s *Server) strictFields(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed func(map[string]json.RawMessage) []string
		switch {
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
						unknownField(w, k, fields)
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// unknownField is the 400 of a strict body's field the spec does not
// define.
func unknownField(w http.ResponseWriter, name string, fields []string) {
	writeError(w, http.StatusBadRequest, "BadRequest",
		"unknown field "+strconvQuote(name)+" in the request body: the fields are "+strings.Join(fields, ", "))
}

// createTaskServer is the generated server with POST /v1/tasks, the hot
// route, decoding its body once: the strict check of its fields and the
// typed request come from one pass over the body, and the task context is
// kept as the JSON it came as (json.RawMessage) rather than decoded into a
// map and encoded again by the engine. The answers are those of the
// generated route.
type createTaskServer struct {
	gen.ServerInterface
	s *Server
}

func (h createTaskServer) CreateTask(w http.ResponseWriter, r *http.Request) {
	s := h.s
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.requestError(w, r, fmt.Errorf("can't decode JSON body: %w", err))
		return
	}
	req, unknown, err := decodeTaskRequest(body)
	switch {
	case unknown != "":
		unknownField(w, unknown, taskRequestFields)
		return
	case err != nil:
		s.requestError(w, r, fmt.Errorf("can't decode JSON body: %w", err))
		return
	}
	resp, err := s.CreateTask(r.Context(), gen.CreateTaskRequestObject{Body: req})
	if err == nil {
		err = resp.VisitCreateTaskResponse(w)
	}
	if err != nil {
		s.responseError(w, r, err)
	}
}

// taskRequestIndex maps each JSON name of gen.TaskRequest to its field.
var taskRequestIndex = func() map[string]int {
	m := map[string]int{}
	t := reflect.TypeFor[gen.TaskRequest]()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
}()

// decodeTaskRequest decodes a POST /v1/tasks body: its members, matched to
// the spec's fields by their exact names (unknown names the first member
// that is not one), each decoded into its field, the context left as its
// JSON (nil for null or none). A body that is not a JSON object, or a
// member of the wrong type, is an error as encoding/json words it for the
// whole body; an empty body is io.EOF, as the generated decoder has it.
func decodeTaskRequest(body []byte) (req *gen.TaskRequest, unknown string, err error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, "", io.EOF
	}
	whole := func() error { // the error of decoding the whole body
		if err := json.Unmarshal(body, new(gen.TaskRequest)); err != nil {
			return err
		}
		return errors.New("the request body is not a JSON object of the TaskRequest fields")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, "", whole()
	}
	for k := range m {
		if _, ok := taskRequestIndex[k]; !ok {
			return nil, k, nil
		}
	}
	req = new(gen.TaskRequest)
	v := reflect.ValueOf(req).Elem()
	for k, raw := range m {
		i := taskRequestIndex[k]
		if k == "context" {
			if string(raw) != "null" {
				req.Context = raw
			}
			continue
		}
		if err := json.Unmarshal(raw, v.Field(i).Addr().Interface()); err != nil {
			return nil, "", whole()
		}
	}
	return req, "", nil
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
