// Package api holds Tasker's copy of tasker-core's orchestration API spec
// (OpenAPI 3.1), with Tasker's additions: the source the server interface in
// internal/api/gen is generated from, and the document served at
// /api-docs/openapi.json.
package api

import _ "embed"

// OpenAPI is the spec, as YAML.
//
//go:embed openapi.yaml
var OpenAPI []byte
