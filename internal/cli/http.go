package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/tasker-go/tasker"
	"github.com/tasker-go/tasker/internal/api"
	"github.com/tasker-go/tasker/internal/auth"
	"github.com/tasker-go/tasker/template"
)

// httpServe holds serve's API flags.
type httpServe struct {
	addr       string // --http; "" means no API
	maxBody    int64  // --max-body-bytes
	authConfig string // --auth-config; "" means no auth
	env        string // --environment
	auth       *auth.Authenticator
	mode       string // the deployment mode GET /config reports
	// Pull workers: --pull-complete-timeout, --pull-capacity.
	pullComplete time.Duration
	pullCapacity int
}

// load reads the auth config file, if any.
func (h *httpServe) load() error {
	if h.authConfig == "" {
		return nil
	}
	cfg, err := auth.LoadConfig(h.authConfig)
	if err != nil {
		return usageError{fmt.Errorf("--auth-config: %w", err)}
	}
	a, err := auth.New(cfg, nil)
	if err != nil {
		return usageError{fmt.Errorf("--auth-config %s: %w", h.authConfig, err)}
	}
	h.auth = a
	return nil
}

type httpKey struct{}

// withHTTP hands serve's API flags to serveUntilDone.
func withHTTP(ctx context.Context, h *httpServe) context.Context {
	return context.WithValue(ctx, httpKey{}, h)
}

// web is a running API server: stop drains it, failed reports its end.
type web struct {
	srv    *http.Server
	failed chan error
}

func (w *web) stop(ctx context.Context) error {
	if w.srv == nil {
		return nil
	}
	return w.srv.Shutdown(ctx)
}

// startHTTP serves the API of eng when serve asked for it.
func (g *globals) startHTTP(ctx context.Context, eng *tasker.Engine) (*web, error) {
	w := &web{failed: make(chan error, 1)}
	h, _ := ctx.Value(httpKey{}).(*httpServe)
	if h == nil || h.addr == "" {
		return w, nil
	}
	s, err := api.New(api.Config{Engine: eng, Logger: g.logger(), MaxBodyBytes: h.maxBody, Auth: h.auth,
		Settings: api.Settings{Environment: h.env, DeploymentMode: h.mode}})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w: pick a free address, or --http '' for no API", h.addr, err)
	}
	w.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	w.srv.RegisterOnShutdown(s.CloseStreams)
	go func() {
		if err := w.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.failed <- fmt.Errorf("http server on %s: %w", ln.Addr(), err)
		}
	}()
	g.logger().Info("http api listening", "addr", ln.Addr().String())
	authNote := "no auth (--auth-config turns it on)"
	if h.auth != nil {
		authNote = "auth from " + h.authConfig
	}
	fmt.Fprintf(g.stderr, "tasker: REST API on http://%s, %s (docs/api.md)\n", ln.Addr(), authNote)
	return w, nil
}

// templateNamespaces adds the namespaces of tpls to names.
func templateNamespaces(tpls []*template.Template, names []string) []string {
	for _, t := range tpls {
		if !slices.Contains(names, t.Namespace) {
			names = append(names, t.Namespace)
		}
	}
	return names
}
