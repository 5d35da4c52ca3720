// Package examples holds the example templates, embedded so that the
// benchmark and the tests use the very files the README shows.
package examples

import "embed"

// FS holds linear.yaml, diamond.yaml, dag.yaml, tree.yaml, decision.yaml and
// domain_events.yaml.
//
//go:embed *.yaml
var FS embed.FS
