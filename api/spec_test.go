package api_test

import (
	"os"
	"reflect"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tasker-go/tasker/api"
)

// Our spec is tasker-core's with routes added, nothing of its changed: every
// path, operation and component of tasker-core-openapi.yaml (a verbatim copy
// of tasker-core's) is in openapi.yaml, equal. Ours may add operations to a
// path of theirs (POST /v1/templates) and responses to an operation of theirs
// (create_task's 409); every other key of an operation must be equal.
func TestOurSpecExtendsTaskerCoreUnchanged(t *testing.T) {
	raw, err := os.ReadFile("tasker-core-openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var theirs, ours map[string]any
	if err := yaml.Unmarshal(raw, &theirs); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(api.OpenAPI, &ours); err != nil {
		t.Fatal(err)
	}
	for key, v := range theirs {
		switch key {
		case "paths":
			op, tp := ours["paths"].(map[string]any), v.(map[string]any)
			for path, item := range tp {
				if err := extends(op[path], item); err != "" {
					t.Errorf("path %s: %s: restore it in api/openapi.yaml", path, err)
				}
			}
		case "components":
			oc, _ := ours["components"].(map[string]any)
			for kind, entries := range v.(map[string]any) {
				ok, _ := oc[kind].(map[string]any)
				for name, c := range entries.(map[string]any) {
					if !reflect.DeepEqual(ok[name], c) {
						t.Errorf("components.%s.%s differs from tasker-core's (or is missing): restore it in api/openapi.yaml", kind, name)
					}
				}
			}
		case "tags":
			// Ours may add tags (workers); theirs are kept as they are.
			ot, _ := ours["tags"].([]any)
			for _, tag := range v.([]any) {
				if !slices.ContainsFunc(ot, func(o any) bool { return reflect.DeepEqual(o, tag) }) {
					t.Errorf("tag %v of tasker-core's is missing or changed: restore it in api/openapi.yaml", tag)
				}
			}
		default:
			if !reflect.DeepEqual(ours[key], v) {
				t.Errorf("%s differs from tasker-core's: restore it in api/openapi.yaml", key)
			}
		}
	}
}

// extends says how our path item fails to extend theirs ("" when it does).
func extends(ours, theirs any) string {
	oi, ok1 := ours.(map[string]any)
	ti, ok2 := theirs.(map[string]any)
	if !ok1 || !ok2 {
		if reflect.DeepEqual(ours, theirs) {
			return ""
		}
		return "missing, or not a path item"
	}
	for method, top := range ti {
		oop, ok := oi[method].(map[string]any)
		tm, ok2 := top.(map[string]any)
		if !ok || !ok2 {
			if !reflect.DeepEqual(oi[method], top) {
				return method + " differs from tasker-core's"
			}
			continue
		}
		for k, tv := range tm {
			if k == "responses" {
				ors, _ := oop[k].(map[string]any)
				for code, r := range tv.(map[string]any) {
					if !reflect.DeepEqual(ors[code], r) {
						return method + " response " + code + " differs from tasker-core's"
					}
				}
				continue
			}
			if !reflect.DeepEqual(oop[k], tv) {
				return method + " " + k + " differs from tasker-core's"
			}
		}
		if len(oop) != len(tm) {
			return method + " has keys tasker-core's lacks"
		}
	}
	return ""
}

// The check fails when an operation of theirs is changed.
func TestExtendsCatchesAChange(t *testing.T) {
	theirs := map[string]any{"get": map[string]any{"operationId": "x", "responses": map[string]any{"200": "a"}}}
	added := map[string]any{"get": map[string]any{"operationId": "x", "responses": map[string]any{"200": "a", "409": "b"}},
		"post": map[string]any{"operationId": "y"}}
	if e := extends(added, theirs); e != "" {
		t.Errorf("an added response and operation were refused: %s", e)
	}
	changed := map[string]any{"get": map[string]any{"operationId": "x", "responses": map[string]any{"200": "c"}}}
	if extends(changed, theirs) == "" {
		t.Error("a changed response passed")
	}
	renamed := map[string]any{"get": map[string]any{"operationId": "z", "responses": map[string]any{"200": "a"}}}
	if extends(renamed, theirs) == "" {
		t.Error("a changed operationId passed")
	}
	if extends(nil, theirs) == "" {
		t.Error("a missing path passed")
	}
}
