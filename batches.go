package tasker

import (
	"github.com/tasker-go/tasker/internal/dynamic"
	"github.com/tasker-go/tasker/internal/worker"
	"github.com/tasker-go/tasker/taskertype"
	"github.com/tasker-go/tasker/template"
)

// batchWorkerSettings gives the settings of a batch worker, a step named
// {worker_template}_{batch_id} that its template does not declare: those
// of the batch_worker step it is a copy of, with where its batch inputs
// come from (docs/workflows.md). A step that is no batch worker gets none.
func batchWorkerSettings(tpl *template.Template, name string) worker.StepSettings {
	w := dynamic.WorkerTemplate(tpl, name)
	if w < 0 {
		return worker.StepSettings{}
	}
	ws := &tpl.Steps[w]
	st := worker.StepSettings{Config: ws.Config, Method: ws.Method,
		Batch: &worker.BatchSettings{TemplateStep: ws.Name}}
	for _, d := range ws.DependsOn {
		if j := tpl.StepIndex(d); j >= 0 && tpl.Steps[j].TypeOf() == template.StepBatchable {
			st.Batch.Batchable = d
		}
	}
	b := ws.Batch
	if b == nil {
		for i := range tpl.Steps {
			if c := tpl.Steps[i].Batch; c != nil && tpl.Steps[i].TypeOf() == template.StepBatchable && c.WorkerTemplate == ws.Name {
				b = c
			}
		}
	}
	st.Batch.Metadata = taskertype.BatchMetadata{FailureStrategy: string(template.FailureContinue)}
	if b != nil {
		st.Batch.Metadata.CursorField = b.CursorField
		if b.FailureStrategy != "" {
			st.Batch.Metadata.FailureStrategy = string(b.FailureStrategy)
		}
	}
	return st
}
