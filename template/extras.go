package template

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/tasker-go/tasker/taskertype"
)

// The keys both dialects share beyond the original format: the model the
// decision, batch, domain event and staleness runtime builds on.

var (
	metadataKeys   = []string{"author", "tags", "documentation_url", "created_at", "updated_at"}
	sysDepsKeys    = []string{"primary", "secondary"}
	domainEvtKeys  = []string{"name", "description", "schema"}
	lifecycleKeys  = []string{"max_duration_minutes", "max_waiting_for_dependencies_minutes", "max_waiting_for_retry_minutes", "max_steps_in_process_minutes", "staleness_action", "auto_fail_on_timeout", "auto_dlq_on_timeout"}
	eventKeys      = []string{"name", "description", "condition", "schema", "delivery_mode", "publisher"}
	batchKeys      = []string{"batch_size", "parallelism", "cursor_field", "worker_template", "failure_strategy"}
	eventNameRE    = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)
	publisherRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*((::|\.)[A-Za-z_][A-Za-z0-9_]*)*$`)
	maxWorkerDigit = len("_001")
)

// templateExtras reads metadata, system_dependencies, domain_events,
// lifecycle and identity_strategy from the top-level keys.
func (p *parser) templateExtras(t *Template, top map[string]entry) {
	a := at{step: -1}
	if v, ok := oneOf(p, top, "identity_strategy", a, taskertype.IdentityStrategies); ok {
		t.IdentityStrategy = v
	}
	if e, ok := top["metadata"]; ok && e.val != nil {
		// Free-form documentation, kept whole; the keys tasker-core knows
		// must have its types.
		spec := mapSpec{where: "in metadata", known: metadataKeys, kept: true}
		if m, ok := p.fields(e.val, e.line, a.under("metadata"), spec); ok {
			am := a.under("metadata")
			p.text(m, "author", am)
			p.text(m, "documentation_url", am)
			p.texts(m, "tags", am, "[team:payments, pattern:linear]")
			for _, k := range []string{"created_at", "updated_at"} {
				if v, ok := p.text(m, k, am); ok {
					if _, err := time.Parse(time.RFC3339, v); err != nil {
						p.add(Problem{Line: m[k].line, Field: am.field(k), Message: fmt.Sprintf("%q is not a timestamp", v),
							Hint: `write an RFC 3339 time such as "2025-11-01T00:00:00Z"`})
					}
				}
			}
			t.Metadata, _ = p.jsonOf(top, "metadata", a, true)
		}
	}
	if e, ok := top["system_dependencies"]; ok && e.val != nil {
		as := a.under("system_dependencies")
		if m, ok := p.fields(e.val, e.line, as, mapSpec{where: "in system_dependencies", known: sysDepsKeys}); ok {
			sd := &SystemDependencies{Primary: "default"}
			if v, ok := p.text(m, "primary", as); ok && v != "" {
				sd.Primary = v
			}
			if sec, _ := p.texts(m, "secondary", as, "[billing, crm]"); len(sec) > 0 {
				sd.Secondary = sec
			}
			t.SystemDependencies = sd
		}
	}
	if e, ok := top["domain_events"]; ok && e.val != nil {
		for j, n := range p.items(e, a, "domain_events") {
			ad := at{step: -1, prefix: fmt.Sprintf("domain_events[%d].", j)}
			m, ok := p.fields(n, n.Line, ad, mapSpec{where: "in a domain event", known: domainEvtKeys})
			if !ok {
				continue
			}
			var d DomainEvent
			if d.Name, _ = p.text(m, "name", ad); d.Name == "" {
				p.add(Problem{Line: n.Line, Field: ad.field("name"), Message: "a domain event has no name",
					Hint: "add name: order.created"})
			}
			d.Description, _ = p.text(m, "description", ad)
			d.Schema, _ = p.schemaOf(m, "schema", ad)
			t.DomainEvents = append(t.DomainEvents, d)
		}
	}
	if e, ok := top["lifecycle"]; ok && e.val != nil {
		al := a.under("lifecycle")
		m, ok := p.fields(e.val, e.line, al, mapSpec{where: "in lifecycle", known: lifecycleKeys})
		if !ok {
			return
		}
		lc := &Lifecycle{StalenessAction: StalenessDLQ}
		minutes := func(key string, limit int, dst *int) {
			if v, ok := p.whole(m, key, al); ok {
				if v < 1 || v > limit {
					p.add(Problem{Line: m[key].line, Field: al.field(key),
						Message: fmt.Sprintf("%s %d is out of range 1..%d", key, v, limit),
						Hint:    "give a number of minutes; leave it out for the default"})
					return
				}
				*dst = v
			}
		}
		minutes("max_duration_minutes", MaxDurationMinutesLimit, &lc.MaxDurationMinutes)
		minutes("max_waiting_for_dependencies_minutes", MaxThresholdMinutesLimit, &lc.MaxWaitingForDependenciesMinutes)
		minutes("max_waiting_for_retry_minutes", MaxThresholdMinutesLimit, &lc.MaxWaitingForRetryMinutes)
		minutes("max_steps_in_process_minutes", MaxThresholdMinutesLimit, &lc.MaxStepsInProcessMinutes)
		if v, ok := oneOf(p, m, "staleness_action", al, StalenessActions); ok {
			lc.StalenessAction = v
		}
		if v, ok := p.boolean(m, "auto_fail_on_timeout", al); ok {
			lc.AutoFailOnTimeout = &v
		}
		if v, ok := p.boolean(m, "auto_dlq_on_timeout", al); ok {
			lc.AutoDLQOnTimeout = &v
		}
		t.Lifecycle = lc
	}
}

// items returns the mappings of a list-valued entry, reporting a value that
// is not a list.
func (p *parser) items(e entry, a at, key string) []*yamlNode {
	if e.val == nil {
		return nil
	}
	if e.val.Kind != sequenceKind {
		p.add(Problem{Line: e.line, Step: a.label, Field: a.field(key),
			Message: "got " + article(kindName(e.val)) + ", want a list", Hint: "write " + key + " as a list: each item starts with '- name: ...'"})
		return nil
	}
	out := make([]*yamlNode, 0, len(e.val.Content))
	for _, n := range e.val.Content {
		out = append(out, resolve(n))
	}
	return out
}

// stepExtras reads type (or step_type), system_dependency, result_schema,
// publishes_events and batch_config of step i.
func (p *parser) stepExtras(s *Step, f map[string]entry, a at) {
	key := "type"
	if _, ok := f["type"]; !ok && p.core {
		key = "step_type"
	}
	if v, ok := oneOf(p, f, key, a, StepTypes); ok && v != StepStandard {
		s.Type = v // a standard step is left "", as a step built in code
	}
	s.SystemDependency, _ = p.text(f, "system_dependency", a)
	s.ResultSchema, _ = p.schemaOf(f, "result_schema", a)
	if e, ok := f["publishes_events"]; ok {
		seen := map[string]int{}
		for j, n := range p.items(e, a, "publishes_events") {
			ae := at{step: a.step, label: a.label, prefix: fmt.Sprintf("%spublishes_events[%d].", a.prefix, j)}
			m, ok := p.fields(n, n.Line, ae, mapSpec{where: "in an event", known: eventKeys})
			if !ok {
				continue
			}
			ev := EventDeclaration{Condition: EventOnSuccess, DeliveryMode: DeliveryDurable}
			ev.Name, _ = p.text(m, "name", ae)
			switch {
			case ev.Name == "":
				p.add(Problem{Line: n.Line, Step: a.label, Field: ae.field("name"), Message: "an event has no name",
					Hint: "add name: payment.processed (lowercase words joined by dots)"})
			case !eventNameRE.MatchString(ev.Name):
				p.add(Problem{Line: m["name"].line, Step: a.label, Field: ae.field("name"),
					Message: fmt.Sprintf("invalid event name %q", ev.Name),
					Hint:    "use lowercase letters, digits and _ in at least two parts joined by dots, e.g. order.created"})
			default:
				if first, dup := seen[ev.Name]; dup {
					p.add(Problem{Line: m["name"].line, Step: a.label, Field: ae.field("name"),
						Message: fmt.Sprintf("event %q is declared twice (first at line %d)", ev.Name, first),
						Hint:    "declare each event once per step"})
				}
				seen[ev.Name] = m["name"].line
			}
			ev.Description, _ = p.text(m, "description", ae)
			if v, ok := oneOf(p, m, "condition", ae, EventConditions); ok {
				ev.Condition = v
			}
			ev.Schema, _ = p.schemaOf(m, "schema", ae)
			if v, ok := oneOf(p, m, "delivery_mode", ae, DeliveryModes); ok {
				ev.DeliveryMode = v
			}
			if v, ok := p.text(m, "publisher", ae); ok {
				if !publisherRE.MatchString(v) {
					p.add(Problem{Line: m["publisher"].line, Step: a.label, Field: ae.field("publisher"),
						Message: fmt.Sprintf("invalid publisher name %q", v),
						Hint:    "use an identifier, with :: or . between parts: PaymentEventPublisher, my_module::Publisher"})
				}
				ev.Publisher = v
			}
			s.PublishesEvents = append(s.PublishesEvents, ev)
		}
	}
	if e, ok := f["batch_config"]; ok && e.val != nil {
		ab := a.under("batch_config")
		m, ok := p.fields(e.val, e.line, ab, mapSpec{where: "in batch_config", known: batchKeys})
		if !ok {
			return
		}
		b := &BatchConfig{BatchSize: DefaultBatchSize, Parallelism: DefaultParallelism, CursorField: DefaultCursorField,
			FailureStrategy: FailureContinue}
		bounded := func(key string, limit int, dst *int) {
			if v, ok := p.whole(m, key, ab); ok {
				if v < 1 || v > limit {
					p.add(Problem{Line: m[key].line, Step: a.label, Field: ab.field(key),
						Message: fmt.Sprintf("%s %d is out of range 1..%d", key, v, limit), Hint: "give a whole number in range"})
					return
				}
				*dst = v
			}
		}
		bounded("batch_size", MaxBatchSize, &b.BatchSize)
		bounded("parallelism", MaxParallelism, &b.Parallelism)
		if v, ok := p.text(m, "cursor_field", ab); ok {
			if v == "" || len(v) > 255 {
				p.add(Problem{Line: m["cursor_field"].line, Step: a.label, Field: ab.field("cursor_field"),
					Message: "cursor_field must have 1 to 255 characters", Hint: "name the field the cursor ranges over, e.g. id"})
			} else {
				b.CursorField = v
			}
		}
		b.WorkerTemplate, _ = p.text(m, "worker_template", ab)
		if b.WorkerTemplate == "" {
			p.add(Problem{Line: e.line, Step: a.label, Field: ab.field("worker_template"),
				Message: "batch_config has no worker_template",
				Hint:    "name the batch_worker step the workers are copies of: worker_template: process_batch"})
		}
		if v, ok := oneOf(p, m, "failure_strategy", ab, FailureStrategies); ok {
			b.FailureStrategy = v
		}
		s.Batch = b
	}
}

// checkTypes checks what the step types ask of the graph: a decision has
// steps to create, a batch_worker is named by a worker_template and comes
// after a batchable step, only deferred_convergence steps wait for batch
// workers or for steps a decision may not create. It runs once the graph
// is known to be sound (names unique, dependencies known, no cycles).
func (c *checker) checkTypes(t *Template, l *locator) {
	line := func(i int, path ...string) int { return l.line(i, path...) }
	typeLine := func(i int) int {
		if n := line(i, "type"); n != line(i) {
			return n
		}
		return line(i, "step_type")
	}
	idx := make(map[string]int, len(t.Steps))
	for i := range t.Steps {
		idx[t.Steps[i].Name] = i
	}
	// dynamic[i]: step i is created at run time, by a decision (it is
	// downstream of one) or by a batchable step (it is a batch worker).
	dynamic := make([]bool, len(t.Steps))
	var mark func(i int) bool
	state := make([]int8, len(t.Steps)) // 0 new, 1 visiting, 2 done
	mark = func(i int) bool {
		if state[i] != 0 {
			return dynamic[i]
		}
		state[i] = 1
		for _, d := range t.Steps[i].DependsOn {
			j := idx[d]
			if t.Steps[j].TypeOf() == StepDecision || t.Steps[j].TypeOf() == StepBatchWorker || mark(j) {
				dynamic[i] = true
			}
		}
		state[i] = 2
		return dynamic[i]
	}
	named := map[string]bool{} // worker templates named by a batch_config
	children := make([]int, len(t.Steps))
	for i := range t.Steps {
		mark(i)
		for _, d := range t.Steps[i].DependsOn {
			children[idx[d]]++
		}
		if b := t.Steps[i].Batch; b != nil && b.WorkerTemplate != "" {
			named[b.WorkerTemplate] = true
		}
	}
	for i := range t.Steps {
		s := &t.Steps[i]
		label := stepLabel(s, i)
		if b := s.Batch; b != nil {
			ty := s.TypeOf()
			j, known := idx[b.WorkerTemplate]
			switch {
			case ty != StepBatchable && ty != StepBatchWorker:
				c.add(Problem{Line: line(i, "batch_config"), Step: label, Field: "batch_config",
					Message: fmt.Sprintf("batch_config on a %s step", ty),
					Hint:    "batch_config belongs to a batchable step or to its batch_worker step; set the step's type, or remove batch_config"})
			case b.WorkerTemplate == "":
			case !known:
				c.add(Problem{Line: line(i, "batch_config", "worker_template"), Step: label, Field: "batch_config.worker_template",
					Message: fmt.Sprintf("worker_template %q is not a step of this template", b.WorkerTemplate),
					Hint:    "name the batch_worker step the workers are copies of"})
			case t.Steps[j].TypeOf() != StepBatchWorker:
				c.add(Problem{Line: line(i, "batch_config", "worker_template"), Step: label, Field: "batch_config.worker_template",
					Message: fmt.Sprintf("worker_template %q is a %s step, not a batch_worker", b.WorkerTemplate, t.Steps[j].TypeOf()),
					Hint:    "give that step type: batch_worker, or name the batch_worker step"})
			}
		}
		switch s.TypeOf() {
		case StepDecision:
			if len(s.DependsOn) == 0 {
				c.add(Problem{Line: typeLine(i), Step: label, Field: "type",
					Message: "a decision step must depend on at least one step (tasker-core's rule)",
					Hint:    "add the step whose result the decision reads to its dependencies"})
			}
			if children[i] == 0 {
				c.add(Problem{Line: typeLine(i), Step: label, Field: "type",
					Message: "the decision has no steps to create: no step depends on it",
					Hint:    "declare the steps it may create, each depending on it; or make it a standard step"})
			}
		case StepBatchWorker:
			if !named[s.Name] {
				c.add(Problem{Line: typeLine(i), Step: label, Field: "type",
					Message: fmt.Sprintf("no batch_config names batch_worker step %q as its worker_template", s.Name),
					Hint:    fmt.Sprintf("add batch_config with worker_template: %s (to this step or to its batchable step)", s.Name)})
			}
			batchable := false
			for _, d := range s.DependsOn {
				batchable = batchable || t.Steps[idx[d]].TypeOf() == StepBatchable
			}
			if !batchable {
				c.add(Problem{Line: typeLine(i), Step: label, Field: "type",
					Message: "a batch_worker step does not depend on a batchable step: nothing would create its workers",
					Hint:    "add the batchable step that plans the batches to its dependencies"})
			}
			if len(s.Name)+maxWorkerDigit > 63 {
				c.add(Problem{Line: line(i, "name"), Step: label, Field: "name",
					Message: fmt.Sprintf("the workers' names %s_001... would be longer than 63 characters", s.Name),
					Hint:    fmt.Sprintf("shorten the name to at most %d characters", 63-maxWorkerDigit)})
			}
		case StepDeferredConvergence:
			anyDynamic := false
			for _, d := range s.DependsOn {
				j := idx[d]
				anyDynamic = anyDynamic || dynamic[j] || t.Steps[j].TypeOf() == StepBatchWorker || t.Steps[j].TypeOf() == StepDecision
			}
			if !anyDynamic {
				c.add(Problem{Line: typeLine(i), Step: label, Field: "type",
					Message: "a deferred_convergence step waits for steps a decision or a batchable step creates, but none of its dependencies is one",
					Hint:    "depend on the steps downstream of a decision (or on a batch_worker step), or make it a standard step"})
			}
		}
		if s.TypeOf() != StepDeferredConvergence {
			for _, d := range s.DependsOn {
				if t.Steps[idx[d]].TypeOf() == StepBatchWorker {
					c.add(Problem{Line: line(i), Step: label, Field: "depends_on",
						Message: fmt.Sprintf("depends on batch_worker step %q, which never runs itself (its workers do)", d),
						Hint:    "make this step deferred_convergence: it then waits for every worker created"})
				}
			}
		}
	}
}

// checkBuiltExtras checks the fields beyond the original format of a
// template built in code: Parse checks them as it reads them.
func (c *checker) checkBuiltExtras(t *Template) {
	bad := func(step, field, msg, hint string) {
		c.add(Problem{Step: step, Field: field, Message: msg, Hint: hint})
	}
	for i := range t.Steps {
		s := &t.Steps[i]
		label := stepLabel(s, i)
		if s.Type != "" && !slices.Contains(StepTypes, s.Type) {
			bad(label, "type", fmt.Sprintf("unknown step type %q", s.Type), "use one of the StepTypes")
		}
		if s.Config != nil {
			var m map[string]json.RawMessage
			if json.Unmarshal(s.Config, &m) != nil || m == nil {
				bad(label, "config", "the configuration is not a JSON object", "give a JSON object, or nil for none")
			}
		}
		for _, ev := range s.PublishesEvents {
			switch {
			case !eventNameRE.MatchString(ev.Name):
				bad(label, "publishes_events", fmt.Sprintf("invalid event name %q", ev.Name), "use lowercase words joined by dots, e.g. order.created")
			case ev.Condition != "" && !slices.Contains(EventConditions, ev.Condition):
				bad(label, "publishes_events", fmt.Sprintf("event %s: unknown condition %q", ev.Name, ev.Condition), "use one of the EventConditions")
			case ev.DeliveryMode != "" && !slices.Contains(DeliveryModes, ev.DeliveryMode):
				bad(label, "publishes_events", fmt.Sprintf("event %s: unknown delivery mode %q", ev.Name, ev.DeliveryMode), "use one of the DeliveryModes")
			}
		}
		if b := s.Batch; b != nil {
			switch {
			case b.BatchSize < 1 || b.BatchSize > MaxBatchSize:
				bad(label, "batch_config.batch_size", fmt.Sprintf("batch_size %d is out of range 1..%d", b.BatchSize, MaxBatchSize), "")
			case b.Parallelism < 1 || b.Parallelism > MaxParallelism:
				bad(label, "batch_config.parallelism", fmt.Sprintf("parallelism %d is out of range 1..%d", b.Parallelism, MaxParallelism), "")
			case b.WorkerTemplate == "":
				bad(label, "batch_config.worker_template", "batch_config has no worker_template", "name the batch_worker step")
			case b.FailureStrategy != "" && !slices.Contains(FailureStrategies, b.FailureStrategy):
				bad(label, "batch_config.failure_strategy", fmt.Sprintf("unknown failure strategy %q", b.FailureStrategy), "use one of the FailureStrategies")
			}
		}
	}
	if s := t.IdentityStrategy; s != "" && !slices.Contains(taskertype.IdentityStrategies, s) {
		bad("", "identity_strategy", fmt.Sprintf("unknown identity strategy %q", s), "use strict, caller_provided or always_unique")
	}
	if lc := t.Lifecycle; lc != nil && lc.StalenessAction != "" && !slices.Contains(StalenessActions, lc.StalenessAction) {
		bad("", "lifecycle.staleness_action", fmt.Sprintf("unknown staleness action %q", lc.StalenessAction), "use one of the StalenessActions")
	}
	if graphSound(t) {
		c.checkTypes(t, nil)
	}
}
