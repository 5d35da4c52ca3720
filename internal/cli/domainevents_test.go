package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRunTheDomainEventsExample runs examples/domain_events.yaml through
// `tasker run`: the fast and broadcast events its header lists are printed,
// per outcome, and the durable-only payment.failed is not.
func TestRunTheDomainEventsExample(t *testing.T) {
	for _, tc := range []struct {
		context string
		code    int
		want    []string
		absent  []string
	}{
		{`{"value": 41}`, ExitOK, []string{
			`domain event order.validated: step validate, success, fast: {"value":42}`,
			`domain event payment.processed: step charge, success, broadcast: {"transaction_id":"txn-42","amount":42,"payment_method":"card"}`,
			`domain event notification.sent: step notify, success, fast:`,
		}, []string{"payment.retrying", "payment.failed"}},
		{`{"value": 41, "fail_times": 1}`, ExitOK, []string{
			`domain event payment.retrying: step charge, retryable_failure, fast: {"error_message":"charge: the card was declined on attempt 1`,
			`domain event payment.processed: step charge, success, broadcast:`,
		}, []string{"payment.failed"}},
		{`{"value": 41, "fail_times": 3}`, ExitFailed, []string{
			`"retryable":true,"attempt":2,"step_name":"charge"}`,
		}, []string{"payment.processed", "payment.failed", "notification.sent"}},
	} {
		t.Run(tc.context, func(t *testing.T) {
			code, out, errOut := runCLI(t, "run", filepath.Join(examples, "domain_events.yaml"), "-c", tc.context,
				"--db", filepath.Join(t.TempDir(), "t.db"), "-q")
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(out, a) {
					t.Errorf("output shows %q:\n%s", a, out)
				}
			}
		})
	}
}
