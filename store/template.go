package store

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// Template is a template as stored: its document and who registered it.
// A stored version does not change unless a put asks to replace it
// (TemplatePutParams.Replace); a change is otherwise a new version.
type Template struct {
	Namespace, Name, Version string
	// Source is the document as registered (the YAML file, or the
	// canonical JSON of a template built in code); template.Parse reads
	// it.
	Source []byte
	// SourceName says where the document came from (a file path), or "".
	SourceName string
	// Digest identifies the definition (template.Digest): a put of the
	// same key with another digest is a conflict.
	Digest       string
	RegisteredAt time.Time
	// RegisteredBy names the process that stored it (or replaced it last).
	RegisteredBy string
}

// Key returns "namespace/name@version".
func (t *Template) Key() string { return t.Namespace + "/" + t.Name + "@" + t.Version }

// Maximum sizes of a stored template's fields.
const (
	MaxTemplateSource = 4 << 20 // bytes of Source: template.MaxFileSize
	maxTemplateName   = 256     // bytes of Namespace, Name, Version, Digest, SourceName, RegisteredBy
)

// TemplatePutParams are the templates TemplatePut stores, all or none.
type TemplatePutParams struct {
	Templates []*Template
	// Replace: a template stored already under its key with another
	// Digest is replaced by the one given (every field), not refused.
	// Tasks created from the old definition keep their steps: a task's
	// steps are materialized when it is created.
	Replace bool
	// Replaced is set by a successful TemplatePut with Replace: the
	// stored templates it replaced, as they were, without their Source.
	Replaced []*Template
}

// Validate checks the params: every field but SourceName set, sizes
// within bounds, no key twice.
func (p *TemplatePutParams) Validate() error {
	if p == nil || len(p.Templates) == 0 {
		return fmt.Errorf("template put: no templates given: %w", taskertype.ErrInvalid)
	}
	seen := make(map[[3]string]bool, len(p.Templates))
	for i, t := range p.Templates {
		if t == nil {
			return fmt.Errorf("template put: template %d is nil: %w", i, taskertype.ErrInvalid)
		}
		for _, f := range []struct{ name, v string }{
			{"Namespace", t.Namespace}, {"Name", t.Name}, {"Version", t.Version}, {"Digest", t.Digest}, {"RegisteredBy", t.RegisteredBy},
		} {
			if f.v == "" {
				return fmt.Errorf("template put: template %s: %s is empty: %w", t.Key(), f.name, taskertype.ErrInvalid)
			}
			if len(f.v) > maxTemplateName {
				return fmt.Errorf("template put: template %s: %s is %d bytes, more than %d: %w", t.Key(), f.name, len(f.v), maxTemplateName, taskertype.ErrInvalid)
			}
		}
		if len(t.SourceName) > 4*maxTemplateName {
			return fmt.Errorf("template put: template %s: SourceName is %d bytes, more than %d: %w", t.Key(), len(t.SourceName), 4*maxTemplateName, taskertype.ErrInvalid)
		}
		if len(t.Source) == 0 || len(t.Source) > MaxTemplateSource {
			return fmt.Errorf("template put: template %s: Source is %d bytes; give the document, of at most %d bytes: %w", t.Key(), len(t.Source), MaxTemplateSource, taskertype.ErrInvalid)
		}
		if t.RegisteredAt.IsZero() {
			return fmt.Errorf("template put: template %s: RegisteredAt is zero: %w", t.Key(), taskertype.ErrInvalid)
		}
		k := [3]string{t.Namespace, t.Name, t.Version}
		if seen[k] {
			return fmt.Errorf("template put: template %s is given twice: %w", t.Key(), taskertype.ErrInvalid)
		}
		seen[k] = true
	}
	return nil
}

// TemplateGetParams names a stored template.
type TemplateGetParams struct {
	Namespace, Name string
	// Version is the version asked; "" means the latest.
	Version string
}

// Validate checks the params.
func (p *TemplateGetParams) Validate() error {
	if p == nil || p.Namespace == "" || p.Name == "" {
		return fmt.Errorf("template get: give the namespace and the name: %w", taskertype.ErrInvalid)
	}
	return nil
}

// TemplateListParams filters TemplateList.
type TemplateListParams struct {
	// Namespace keeps one namespace's templates; "" keeps all.
	Namespace string
	// Name keeps one name's versions (with Namespace); "" keeps all.
	Name string
}

// TemplateConflictError is TemplatePut's answer to a template stored
// already under its key with another definition. It matches
// taskertype.ErrInvalid.
type TemplateConflictError struct {
	Key         string    // namespace/name@version
	Stored      *Template // the one stored, without its Source
	GivenDigest string
	GivenSource string // SourceName of the template given
	// InProcess: the process registered the other definition itself, in
	// its own registry (replace mode replaces the database's, not it).
	InProcess bool
}

func (e *TemplateConflictError) Error() string {
	from := ""
	if e.GivenSource != "" {
		from = " from " + e.GivenSource
	}
	stored := ""
	if e.Stored != nil {
		stored = " (registered by " + e.Stored.RegisteredBy
		if !e.Stored.RegisteredAt.IsZero() {
			stored += " at " + e.Stored.RegisteredAt.UTC().Format(time.RFC3339)
		}
		if e.Stored.SourceName != "" {
			stored += " from " + e.Stored.SourceName
		}
		stored += ")"
	}
	if e.InProcess {
		return fmt.Sprintf("template %s%s differs from the one this process registered under that version%s: a process "+
			"holds one definition per version; give the changed template a new version (bump its version: field), "+
			"or start the process again with the changed template (with --replace-templates, or "+
			"Config.ReplaceTemplates, it replaces the stored one)", e.Key, from, stored)
	}
	return fmt.Sprintf("template %s%s differs from the one stored under that version%s: a registered version "+
		"cannot change; give the changed template a new version (bump its version: field), "+
		"register the template as it was, or replace the stored one (Config.ReplaceTemplates, "+
		"--replace-templates; `tasker run` replaces)", e.Key, from, stored)
}

// Is makes the error match taskertype.ErrInvalid.
func (e *TemplateConflictError) Is(target error) bool { return target == taskertype.ErrInvalid }

// SortTemplates orders templates by namespace, name and version precedence
// (template.CompareVersions), as TemplateList returns them.
func SortTemplates(ts []*Template) {
	slices.SortFunc(ts, func(a, b *Template) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name),
			template.CompareVersions(a.Version, b.Version))
	})
}
