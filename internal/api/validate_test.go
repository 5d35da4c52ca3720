package api_test

import (
	"strings"
	"testing"

	"github.com/tasker-go/tasker/internal/api"
)

func TestValidateTemplate(t *testing.T) {
	c, _ := newClient(t, "sqlite", api.Config{})
	const good = "name: posted\nnamespace: demo\nversion: 1.0.0\nsteps:\n  - name: a\n    handler: demo.add\n"
	type problem struct {
		Line    *int    `json:"line"`
		Step    *string `json:"step"`
		Field   *string `json:"field"`
		Message string  `json:"message"`
	}
	var v struct {
		Valid, Registered bool
		Name              *string
		Dialect           *string
		Errors            []problem
	}
	t.Run("a valid template is answered valid, not registered", func(t *testing.T) {
		c.json("POST", "/v1/templates", good, 200, &v)
		if !v.Valid || v.Registered || v.Name == nil || *v.Name != "posted" || *v.Dialect != "tasker" {
			t.Errorf("%+v", v)
		}
		st, _ := c.do("GET", "/v1/templates/demo/posted/1.0.0", nil)
		if st != 404 {
			t.Errorf("validated only, yet GET answers %d", st)
		}
	})
	t.Run("an invalid one lists its problems with line, step and field", func(t *testing.T) {
		bad := strings.Replace(good, "handler: demo.add", "handler: demo.add\n    depends_on: [zz]", 1)
		c.json("POST", "/v1/templates", bad, 200, &v)
		if v.Valid || len(v.Errors) == 0 {
			t.Fatalf("%+v", v)
		}
		p := v.Errors[0]
		if p.Line == nil || *p.Line != 7 || p.Step == nil || *p.Step != "a" || p.Field == nil || *p.Field != "depends_on" || !strings.Contains(p.Message, "zz") {
			t.Errorf("problem %+v: want line 7, step a, field depends_on, naming zz", p)
		}
		c.json("POST", "/v1/templates?register=true", bad, 422, &v)
	})
	t.Run("register=true registers a valid one; a changed definition is 409", func(t *testing.T) {
		c.json("POST", "/v1/templates?register=true", good, 201, &v)
		if !v.Registered {
			t.Errorf("%+v", v)
		}
		c.json("GET", "/v1/templates/demo/posted/1.0.0", nil, 200, nil)
		changed := strings.Replace(good, "demo.add", "demo.square", 1)
		c.json("POST", "/v1/templates?register=true", changed, 409, nil)
	})
	t.Run("JSON and tasker-core documents are read too; an empty body is 400", func(t *testing.T) {
		c.json("POST", "/v1/templates", `{"name":"j","namespace":"demo","version":"1.0.0","steps":[{"name":"a","handler":"demo.add"}]}`, 200, &v)
		if !v.Valid {
			t.Errorf("JSON: %+v", v)
		}
		core := "name: c\nnamespace_name: demo\nversion: 1.0.0\nsteps:\n  - name: a\n    handler:\n      callable: demo.add\n"
		c.json("POST", "/v1/templates", core, 200, &v)
		if !v.Valid || *v.Dialect != "tasker-core" {
			t.Errorf("tasker-core: %+v %+v", v, v.Errors)
		}
		c.json("POST", "/v1/templates", "", 400, nil)
		c.json("POST", "/v1/templates?register=maybe", good, 400, nil)
	})
}
