package api_test

import (
	"os"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tasker-go/tasker/api"
)

// Our spec is tasker-core's with routes added, nothing of its changed: every
// path, operation and component of tasker-core-openapi.yaml (a verbatim copy
// of tasker-core's) is in openapi.yaml, equal.
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
				if !reflect.DeepEqual(op[path], item) {
					t.Errorf("path %s differs from tasker-core's (or is missing): restore it in api/openapi.yaml", path)
				}
			}
		default:
			if !reflect.DeepEqual(ours[key], v) {
				t.Errorf("%s differs from tasker-core's: restore it in api/openapi.yaml", key)
			}
		}
	}
}
