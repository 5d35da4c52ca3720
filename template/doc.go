// Package template reads, validates and keeps workflow templates.
//
// A template is a directed acyclic graph of steps declared in YAML; a task is
// one run of a template. Two dialects load into the same Template: the
// format below, and tasker-core's (namespace_name, handler: {callable: ...},
// dependencies, timeout_seconds, backoff_base_ms, environments ...). A file
// is tasker-core's when its top level has namespace_name or a step's handler
// is a mapping; docs/templates.md maps it key by key. A Loader chooses the
// environment whose overrides a tasker-core template applies, and whether
// warnings (the keys tasker-core ignores) are errors. Parse turns one YAML document into a *Template,
// LoadFile and LoadPaths read files and directories, and a Registry holds the
// templates a process knows, looked up by namespace, name and version.
//
// # Format
//
//	name: linear_workflow          # required, ^[a-z][a-z0-9_]{0,62}$
//	namespace: demo                # required, same pattern, not ending with _domain_events; the queue is worker_<namespace>
//	version: 1.0.0                 # required, MAJOR.MINOR.PATCH with an optional -prerelease
//	description: free text         # optional
//	context_schema:                # optional JSON Schema (draft 2020-12 unless $schema says otherwise)
//	  type: object
//	  required: [value]
//	  properties: {value: {type: integer}}
//	defaults:                      # optional defaults for every step
//	  retry: {max_attempts: 5}
//	  timeout: 1m
//	steps:                         # required, 1 to MaxSteps steps
//	  - name: square_1             # required, unique, same pattern as name
//	    handler: demo.square       # required, ^[A-Za-z][A-Za-z0-9_.:-]{0,127}$
//	    description: optional
//	    depends_on: [other_step]   # optional, steps of this template
//	    retry:
//	      retryable: true          # default true
//	      max_attempts: 3          # default 3, 1..100, counts every attempt
//	      backoff: exponential     # exponential | linear | fibonacci | none
//	      base: 1s                 # default 1s; > 0 unless backoff is none
//	      cap: 5m                  # default 5m; >= base
//	      jitter: 0.1              # default 0.1, 0..1
//	    timeout: 30s               # default 30s, > 0 and <= 24h
//	    type: standard             # standard | decision | deferred_convergence | batchable | batch_worker
//	    config: {k: v}             # optional JSON object, given to the handler (StepInput.Config)
//	    method: validate           # optional entry point (StepInput.Method)
//	    resolver: name             # optional, kept as written
//	    system_dependency: erp     # optional
//	    result_schema: {...}       # optional JSON Schema of the result, for tools
//	    publishes_events: [...]    # optional domain events (docs/templates.md)
//	    batch_config: {...}        # batchable and batch_worker steps (docs/templates.md)
//	metadata: {author: me}         # optional, free-form
//	system_dependencies: {primary: erp, secondary: [crm]}
//	domain_events: [{name: order.created, description: ..., schema: {...}}]
//	lifecycle: {max_duration_minutes: 60, staleness_action: dlq}
//
// Unknown keys are errors, and so are duplicate keys (in a tasker-core
// document unknown keys are warnings, Template.Warnings). Durations are Go duration strings ("500ms", "2s",
// "1m30s"); a bare number is an error. A step's own field wins over the
// template's defaults, which win over the built-in defaults (DefaultRetry,
// DefaultTimeout).
//
// Limits: MaxSteps steps, MaxFileSize bytes, MaxVersionLength characters
// of version; build metadata (+...) in versions is refused because two
// versions that differ only in it would have the same precedence. A
// context_schema must be self-contained: $ref may point inside it but
// nothing is loaded from files or the network.
//
// A Template is read-only once built and safe to share between goroutines.
// Templates built in code rather than parsed can be checked with Validate;
// Registry.Add checks their identity and step graph.
//
// # Errors
//
// Parse and the loaders report every problem they find, not just the first,
// in one *ValidationError; each Problem names the file, the line when known,
// the step, the field, what is wrong and what to do about it. A
// *ValidationError matches taskertype.ErrInvalid with errors.Is. Registry.Get
// reports an unknown template with an error matching taskertype.ErrNotFound
// that lists what the registry does hold.
package template
