package tasker

import (
	"context"
	"fmt"

	"github.com/tasker-go/tasker/internal/dynamic"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/store"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// registerTemplates stores ts in the database, all or none, then adds
// them to this process's registry and drops what the template cache holds
// of their names (a cached "latest" may have changed). A template this
// process registered already is skipped when its definition is the same
// and refused when it is not.
func (e *Engine) registerTemplates(ctx context.Context, ts []*template.Template) error {
	var fresh []*template.Template
	for _, t := range ts {
		if t == nil {
			return fmt.Errorf("tasker: register template: %w: nil template", taskertype.ErrInvalid)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("tasker: register template: %w", err)
		}
		same, err := e.registered(t)
		if err != nil {
			return fmt.Errorf("tasker: register template: %w", err)
		}
		if !same {
			fresh = append(fresh, t)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := e.storeTemplates(ctx, fresh); err != nil {
		return fmt.Errorf("tasker: register template: %w", err)
	}
	for _, t := range fresh {
		if err := e.templates.Add(t); err != nil {
			// Registered meanwhile by another caller: the store took
			// both, so the definitions are the same.
			if same, _ := e.registered(t); !same {
				return fmt.Errorf("tasker: register template: %w", err)
			}
		}
		e.tmpl.Invalidate(t.Namespace, t.Name)
	}
	return nil
}

// registered reports whether this process registered t already. The same
// key with another definition is a *store.TemplateConflictError.
func (e *Engine) registered(t *template.Template) (bool, error) {
	old, err := e.templates.Get(t.Namespace, t.Name, t.Version)
	if err != nil {
		return false, nil
	}
	d, err := template.Digest(t)
	if err != nil {
		return false, err
	}
	od, err := template.Digest(old)
	if err != nil {
		return false, err
	}
	if d != od {
		return false, &store.TemplateConflictError{Key: t.Key().String(), GivenDigest: d, GivenSource: t.Source, InProcess: true,
			Stored: &store.Template{Namespace: old.Namespace, Name: old.Name, Version: old.Version,
				SourceName: old.Source, Digest: od, RegisteredBy: "this process (" + e.cfg.ProcessorName + ")"}}
	}
	return true, nil
}

// storeTemplates puts ts in the store, all or none. Each is stored as its
// canonical JSON (template.Marshal), the definition it has now: a template
// changed in code after it was parsed (as tasker bench replaces handlers)
// is stored as changed, never as the file it came from.
//
// With Config.ReplaceTemplates a changed definition replaces the stored
// one: logged with both digests, and dropped from this process's cache.
func (e *Engine) storeTemplates(ctx context.Context, ts []*template.Template) error {
	p := &store.TemplatePutParams{Templates: make([]*store.Template, 0, len(ts)), Replace: e.cfg.ReplaceTemplates}
	now := e.clock.Now()
	for _, t := range ts {
		canon, err := template.Marshal(t)
		if err != nil {
			return err
		}
		digest, err := template.Digest(t)
		if err != nil {
			return err
		}
		p.Templates = append(p.Templates, &store.Template{
			Namespace: t.Namespace, Name: t.Name, Version: t.Version, Source: canon, SourceName: t.Source,
			Digest: digest, RegisteredAt: now, RegisteredBy: e.cfg.ProcessorName,
		})
	}
	if err := e.store.TemplatePut(ctx, p); err != nil {
		return err
	}
	for _, old := range p.Replaced {
		var digest, source string
		for _, t := range p.Templates {
			if t.Namespace == old.Namespace && t.Name == old.Name && t.Version == old.Version {
				digest, source = t.Digest, t.SourceName
			}
		}
		e.log.Warn("stored template replaced by a changed definition under the same version (Config.ReplaceTemplates); "+
			"tasks created before keep their steps, other processes' template caches keep the old one up to their TTL",
			"template", old.Key(), "old_digest", old.Digest, "new_digest", digest,
			"old_source", old.SourceName, "new_source", source, "old_registered_by", old.RegisteredBy)
		e.tmpl.Invalidate(old.Namespace, old.Name)
	}
	return nil
}

// stepSettings gives a worker the configuration and method of a step from
// its template, read through the template cache: the step's message names
// the template (a message sent before messages did costs a read of the
// task). A step its template does not declare gets none.
func (e *Engine) stepSettings(ctx context.Context, ref worker.StepRef) (worker.StepSettings, error) {
	name, version := ref.Template, ref.Version
	if name == "" {
		task, err := e.store.TaskGet(ctx, ref.TaskID)
		if err != nil {
			return worker.StepSettings{}, fmt.Errorf("read task %s: %w", ref.TaskID, err)
		}
		name, version = task.Name, task.Version
	}
	tpl, err := e.tmpl.Get(ctx, ref.Namespace, name, version)
	if err != nil {
		return worker.StepSettings{}, err
	}
	i := tpl.StepIndex(ref.Step)
	if i < 0 {
		return batchWorkerSettings(tpl, ref.Step), nil
	}
	return worker.StepSettings{Config: tpl.Steps[i].Config, Method: tpl.Steps[i].Method}, nil
}

// initialSteps returns the positions of the steps a task from tpl is
// created with: all of them, unless tpl has decision steps.
func initialSteps(tpl *template.Template) []int {
	for i := range tpl.Steps {
		if !tpl.Steps[i].IsStandard() {
			return dynamic.New(tpl).Initial()
		}
	}
	out := make([]int, len(tpl.Steps))
	for i := range out {
		out[i] = i
	}
	return out
}
