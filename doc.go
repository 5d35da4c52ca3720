// Package tasker is a workflow orchestration engine: a task is one run of a
// template, a DAG of steps declared in YAML; orchestration enqueues the steps
// whose dependencies are satisfied, records every state change, retries with
// backoff and finalizes the task; workers run the steps' handlers.
//
// A Go program embeds the engine: Open it (on an embedded SQLite file by
// default), register handlers and templates, Start it, create tasks, wait for
// them, and Stop it. See the examples.
package tasker
