// Package client is a typed Go client of Tasker's REST API (docs/api.md):
// tasker-core's orchestration API with Tasker's additions. The requests and
// types are generated from api/openapi.yaml by oapi-codegen (package
// client/oapi); this package wraps them in one method per operation that
// answers the typed result or an *Error carrying the status and the API's
// error.
//
//	c, err := client.New("http://127.0.0.1:8080", client.WithToken(tok))
//	task, err := c.CreateTask(ctx, client.TaskRequest{Namespace: "demo", Name: "linear_workflow", ...})
//	err = c.WatchTask(ctx, task.TaskUuid, func(e client.Event) error { ...; return nil })
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-go/tasker/client/oapi"
)

// The API's types, as generated from the spec.
type (
	Task                   = oapi.TaskResponse
	TaskRequest            = oapi.TaskRequest
	TaskList               = oapi.TaskListResponse
	ListTasksParams        = oapi.ListTasksParams
	Step                   = oapi.StepResponse
	StepAudit              = oapi.StepAuditResponse
	DLQEntry               = oapi.DlqEntry
	ListDLQParams          = oapi.ListDlqEntriesParams
	DLQUpdate              = oapi.UpdateInvestigationRequest
	DLQUpdateResult        = oapi.UpdateInvestigationResponse
	DLQStats               = oapi.DlqStats
	DLQInvestigation       = oapi.DlqInvestigationQueueEntry
	StalenessMonitoring    = oapi.StalenessMonitoring
	TemplateList           = oapi.TemplateListResponse
	TemplateDetail         = oapi.TemplateDetail
	TemplateValidation     = oapi.TemplateValidationResponse
	TemplateProblem        = oapi.TemplateProblem
	TaskTransitionEvent    = oapi.TaskTransitionEvent
	ValidateTemplateParams = oapi.ValidateTemplateParams
)

// DefaultTimeout bounds each request of a client made without
// WithHTTPClient (WatchTask's stream excepted).
const DefaultTimeout = 30 * time.Second

// Client calls one Tasker server. It is safe for concurrent use.
type Client struct {
	base   string
	api    *oapi.Client
	stream *http.Client // for WatchTask: no overall timeout
	auth   func(*http.Request)
}

type options struct {
	hc     *http.Client
	token  string
	apiKey string
}

// Option configures New.
type Option func(*options)

// WithToken authenticates every request with a bearer token (a JWT).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithAPIKey authenticates every request with an API key (X-API-Key).
func WithAPIKey(key string) Option { return func(o *options) { o.apiKey = key } }

// WithHTTPClient sends the requests through hc (its timeout applies to
// WatchTask too).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// New returns a client of the server at baseURL (e.g.
// "http://127.0.0.1:8080"), or an error naming what is wrong with it.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server %q: give an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080", baseURL)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{base: strings.TrimSuffix(baseURL, "/")}
	hc, stream := o.hc, o.hc
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
		stream = &http.Client{}
	}
	c.stream = stream
	c.auth = func(r *http.Request) {
		if o.token != "" {
			r.Header.Set("Authorization", "Bearer "+o.token)
		}
		if o.apiKey != "" {
			r.Header.Set("X-API-Key", o.apiKey)
		}
	}
	c.api, err = oapi.NewClient(c.base, oapi.WithHTTPClient(hc), oapi.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		c.auth(r)
		return nil
	}))
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return c, nil
}

// BaseURL returns the server's URL.
func (c *Client) BaseURL() string { return c.base }

// Error is the server's answer to a request it refused or failed: the
// status, and the spec's ApiError decoded into its kind ("NotFound",
// "BadRequest", "Conflict", ...) and message.
type Error struct {
	StatusCode int
	Kind       string
	Message    string
	// RetryAfter is the Retry-After of a 503 (zero if none).
	RetryAfter time.Duration
	// APIError is the body as the spec's type; Body is it as received.
	APIError *oapi.ApiError
	Body     []byte
	// Method and URL name the request.
	Method, URL string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Kind
	}
	if msg == "" {
		msg = strings.TrimSpace(string(e.Body))
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode), msg)
}

// Is matches ErrNotFound, ErrConflict, ErrUnauthorized and ErrBadRequest
// by status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusUnprocessableEntity ||
			e.StatusCode == http.StatusRequestEntityTooLarge
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable
	}
	return false
}

// Errors an *Error matches by its status.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrUnauthorized = errors.New("unauthorized (401) or forbidden (403)")
	ErrBadRequest   = errors.New("bad request")
	ErrUnavailable  = errors.New("service unavailable")
)

// maxErrorBody bounds the error body read.
const maxErrorBody = 64 << 10

func apiError(resp *http.Response) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{StatusCode: resp.StatusCode, Body: body, Method: resp.Request.Method, URL: resp.Request.URL.String()}
	var ae oapi.ApiError
	if json.Unmarshal(body, &ae) == nil {
		e.APIError = &ae
	}
	var kind string
	var obj map[string]json.RawMessage
	switch {
	case json.Unmarshal(body, &kind) == nil:
		e.Kind = kind
	case json.Unmarshal(body, &obj) == nil && len(obj) == 1:
		for k, v := range obj {
			e.Kind = k
			var m struct {
				Message string `json:"message"`
				Reason  string `json:"reason"`
			}
			_ = json.Unmarshal(v, &m)
			e.Message = m.Message
			if e.Message == "" {
				e.Message = m.Reason
			}
		}
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		var n int
		if _, err := fmt.Sscan(s, &n); err == nil && n > 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	return e
}

// decode reads resp into a T when its status is one of ok, else answers
// its *Error. It closes the body.
func decode[T any](resp *http.Response, err error, ok ...int) (*T, error) {
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	for _, code := range ok {
		if resp.StatusCode == code {
			var v T
			if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
				return nil, fmt.Errorf("%s %s: %d: read the answer: %w", resp.Request.Method, resp.Request.URL, resp.StatusCode, err)
			}
			return &v, nil
		}
	}
	return nil, apiError(resp)
}

// CreateTask creates a task (POST /v1/tasks). A task with the same identity
// is an *Error matching ErrConflict whose message names the existing one.
// A zero CorrelationId is filled with a new UUID, a zero RequestedAt with
// the time now.
func (c *Client) CreateTask(ctx context.Context, req TaskRequest) (*Task, error) {
	if req.CorrelationId == uuid.Nil {
		req.CorrelationId = uuid.New()
	}
	if req.RequestedAt.IsZero() {
		req.RequestedAt = time.Now().UTC()
	}
	if req.Tags == nil {
		req.Tags = []string{}
	}
	if req.Context == nil {
		req.Context = map[string]any{}
	}
	resp, err := c.api.CreateTask(ctx, req)
	return decode[Task](resp, err, http.StatusCreated)
}

// GetTask answers a task with its steps' readiness.
func (c *Client) GetTask(ctx context.Context, id string) (*Task, error) {
	resp, err := c.api.GetTask(ctx, id)
	return decode[Task](resp, err, http.StatusOK)
}

// ListTasks answers a page of tasks, newest first; p may be nil.
func (c *Client) ListTasks(ctx context.Context, p *ListTasksParams) (*TaskList, error) {
	if p == nil {
		p = &ListTasksParams{}
	}
	resp, err := c.api.ListTasks(ctx, p)
	return decode[TaskList](resp, err, http.StatusOK)
}

// CancelTask cancels an unfinished task and answers it as it is then.
func (c *Client) CancelTask(ctx context.Context, id string) (*Task, error) {
	resp, err := c.api.CancelTask(ctx, id)
	return decode[Task](resp, err, http.StatusOK)
}

// ListSteps answers a task's steps in template order.
func (c *Client) ListSteps(ctx context.Context, task string) ([]Step, error) {
	resp, err := c.api.ListTaskSteps(ctx, task)
	steps, err := decode[[]Step](resp, err, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return *steps, nil
}

// GetStep answers one step of a task.
func (c *Client) GetStep(ctx context.Context, task, step string) (*Step, error) {
	resp, err := c.api.GetStep(ctx, task, step)
	return decode[Step](resp, err, http.StatusOK)
}

func (c *Client) stepAction(ctx context.Context, task, step string, set func(*oapi.StepManualAction) error) (*Step, error) {
	var a oapi.StepManualAction
	if err := set(&a); err != nil {
		return nil, fmt.Errorf("client: encode the step action: %w", err)
	}
	resp, err := c.api.ResolveStepManually(ctx, task, step, a)
	return decode[Step](resp, err, http.StatusOK)
}

// ResetStep sends a failed step back to pending with its attempts cleared
// (action reset_for_retry). A step that cannot take it is an *Error
// matching ErrConflict naming its state.
func (c *Client) ResetStep(ctx context.Context, task, step, by, reason string) (*Step, error) {
	return c.stepAction(ctx, task, step, func(a *oapi.StepManualAction) error {
		return a.FromStepManualAction0(oapi.StepManualAction0{ActionType: "reset_for_retry", ResetBy: by, Reason: reason})
	})
}

// ResolveStep marks a step resolved by hand (action resolve_manually).
func (c *Client) ResolveStep(ctx context.Context, task, step, by, reason string) (*Step, error) {
	return c.stepAction(ctx, task, step, func(a *oapi.StepManualAction) error {
		return a.FromStepManualAction1(oapi.StepManualAction1{ActionType: "resolve_manually", ResolvedBy: by, Reason: reason})
	})
}

// CompleteStep completes a step by hand with result, which its dependents
// read (action complete_manually).
func (c *Client) CompleteStep(ctx context.Context, task, step, by, reason string, result any) (*Step, error) {
	return c.stepAction(ctx, task, step, func(a *oapi.StepManualAction) error {
		return a.FromStepManualAction2(oapi.StepManualAction2{ActionType: "complete_manually", CompletedBy: by, Reason: reason,
			CompletionData: oapi.ManualCompletionData{Result: result}})
	})
}

// StepAudit answers a step's audit history (its attempts' results).
func (c *Client) StepAudit(ctx context.Context, task, step string) ([]StepAudit, error) {
	resp, err := c.api.GetStepAudit(ctx, task, step)
	a, err := decode[[]StepAudit](resp, err, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return *a, nil
}

// ListDLQ answers dead-letter-queue entries; p may be nil.
func (c *Client) ListDLQ(ctx context.Context, p *ListDLQParams) ([]DLQEntry, error) {
	if p == nil {
		p = &ListDLQParams{}
	}
	resp, err := c.api.ListDlqEntries(ctx, p)
	l, err := decode[[]DLQEntry](resp, err, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return *l, nil
}

// TaskDLQ answers the DLQ entry of a task.
func (c *Client) TaskDLQ(ctx context.Context, task string) (*DLQEntry, error) {
	id, err := parseID("task uuid", task)
	if err != nil {
		return nil, err
	}
	resp, err := c.api.GetDlqEntry(ctx, id)
	return decode[DLQEntry](resp, err, http.StatusOK)
}

// UpdateDLQEntry records an investigation's outcome on a DLQ entry.
func (c *Client) UpdateDLQEntry(ctx context.Context, entry string, u DLQUpdate) (*DLQUpdateResult, error) {
	id, err := parseID("DLQ entry uuid", entry)
	if err != nil {
		return nil, err
	}
	resp, err := c.api.UpdateDlqInvestigation(ctx, id, u)
	return decode[DLQUpdateResult](resp, err, http.StatusOK)
}

// DLQStats answers the DLQ's counts by reason.
func (c *Client) DLQStats(ctx context.Context) ([]DLQStats, error) {
	resp, err := c.api.GetDlqStats(ctx)
	s, err := decode[[]DLQStats](resp, err, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return *s, nil
}

// DLQInvestigationQueue answers the pending entries by priority; limit 0
// is the server's default.
func (c *Client) DLQInvestigationQueue(ctx context.Context, limit int64) ([]DLQInvestigation, error) {
	p := &oapi.GetInvestigationQueueParams{}
	if limit > 0 {
		p.Limit = &limit
	}
	resp, err := c.api.GetInvestigationQueue(ctx, p)
	q, err := decode[[]DLQInvestigation](resp, err, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return *q, nil
}

// DLQStaleness answers the unfinished tasks by how stale they are.
func (c *Client) DLQStaleness(ctx context.Context, limit int64) ([]StalenessMonitoring, error) {
	p := &oapi.GetStalenessMonitoringParams{}
	if limit > 0 {
		p.Limit = &limit
	}
	resp, err := c.api.GetStalenessMonitoring(ctx, p)
	s, err := decode[[]StalenessMonitoring](resp, err, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return *s, nil
}

// ListTemplates answers the server's templates ("" namespace: all).
func (c *Client) ListTemplates(ctx context.Context, namespace string) (*TemplateList, error) {
	p := &oapi.ListTemplatesParams{}
	if namespace != "" {
		p.Namespace = &namespace
	}
	resp, err := c.api.ListTemplates(ctx, p)
	return decode[TemplateList](resp, err, http.StatusOK)
}

// GetTemplate answers one template.
func (c *Client) GetTemplate(ctx context.Context, namespace, name, version string) (*TemplateDetail, error) {
	resp, err := c.api.GetTemplate(ctx, namespace, name, version)
	return decode[TemplateDetail](resp, err, http.StatusOK)
}

// ValidateTemplate posts a template document (YAML or JSON, either
// dialect) to be validated and, with p.Register, registered. An invalid
// template is not an error: the answer's Valid is false and Errors says
// why (with p.Register the server answers 422, read the same way).
func (c *Client) ValidateTemplate(ctx context.Context, doc []byte, p *ValidateTemplateParams) (*TemplateValidation, error) {
	if p == nil {
		p = &ValidateTemplateParams{}
	}
	resp, err := c.api.ValidateTemplateWithBody(ctx, p, "application/yaml", bytes.NewReader(doc))
	return decode[TemplateValidation](resp, err, http.StatusOK, http.StatusCreated, http.StatusUnprocessableEntity)
}

func parseID(field, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.Nil, fmt.Errorf("client: %s %q is not a UUID", field, s)
	}
	return id, nil
}
