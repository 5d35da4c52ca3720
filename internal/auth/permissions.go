// Package auth authenticates API requests and checks their permissions, as
// tasker-core does: API keys (kept as SHA-256 hashes) and JWT bearer tokens
// (RS256/ES256, verified with a public key or a JWKS), each carrying
// resource:action permissions. docs/api.md describes the config file.
package auth

import (
	"fmt"
	"slices"
	"strings"
)

// PermTemplatesRegister lets POST /v1/templates?register=true register the
// template it validates: Tasker's addition to tasker-core's vocabulary.
const PermTemplatesRegister = "templates:register"

// Permissions is tasker-core's vocabulary of resource:action permissions,
// grouped by resource in this order.
var Permissions = []Permission{
	{"tasks:create", "create tasks"},
	{"tasks:read", "read a task"},
	{"tasks:list", "list tasks"},
	{"tasks:cancel", "cancel a task"},
	{"tasks:context_read", "read a task's context"},
	{"steps:read", "read workflow steps and their audit"},
	{"steps:resolve", "act on a step by hand (reset, resolve, complete)"},
	{"dlq:read", "read the dead letter queue"},
	{"dlq:update", "update a DLQ investigation"},
	{"dlq:stats", "read DLQ statistics"},
	{"templates:read", "read templates"},
	{"templates:validate", "validate a template"},
	{PermTemplatesRegister, "register a posted template (Tasker's: POST /v1/templates?register=true)"},
	{"system:config_read", "read the running configuration"},
	{"system:handlers_read", "read the handler registry"},
	{"system:analytics_read", "read analytics"},
	{"worker:config_read", "read a worker's configuration"},
	{"worker:templates_read", "read a worker's templates"},
}

// Permission is one name of the vocabulary.
type Permission struct {
	Name, Description string
}

// Resource returns the part before the colon.
func (p Permission) Resource() string { r, _, _ := strings.Cut(p.Name, ":"); return r }

// Known says whether p is a permission of the vocabulary or a wildcard of
// one of its resources ("tasks:*") or of all ("*").
func Known(p string) bool {
	if p == "*" {
		return true
	}
	res, act, ok := strings.Cut(p, ":")
	if !ok {
		return false
	}
	for _, q := range Permissions {
		if q.Name == p || (act == "*" && q.Resource() == res) {
			return true
		}
	}
	return false
}

// Allows says whether the granted permissions include required: the same
// name, its resource's wildcard ("tasks:*"), or "*". (tasker-core refuses
// "*"; this server accepts it as every permission.)
func Allows(granted []string, required string) bool {
	res, _, _ := strings.Cut(required, ":")
	return slices.ContainsFunc(granted, func(g string) bool {
		return g == required || g == "*" || g == res+":*"
	})
}

// checkKnown returns an error naming the permissions not in the vocabulary.
func checkKnown(perms []string) error {
	var unknown []string
	for _, p := range perms {
		if !Known(p) {
			unknown = append(unknown, p)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("unknown permissions: %s (`tasker auth show-permissions` lists them; a resource wildcard such as tasks:* or * is allowed)",
			strings.Join(unknown, ", "))
	}
	return nil
}
