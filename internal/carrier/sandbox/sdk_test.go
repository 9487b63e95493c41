package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOfficialNodeSDK drives the sandbox with Onfleet's official Node SDK,
// @onfleet/node-onfleet 1.4.0, unchanged: it sends "Authorization: Basic base64(apiKey)" with
// no colon, reads X-RateLimit-Remaining, calls the batch, read-back and webhook routes, and can
// only read errors in Onfleet's JSON envelope. The SDK is installed with `npm ci` from
// testdata/onfleet-sdk (its package-lock.json pins every version) into the test's temporary
// directory; npm's own cache makes later runs quick and offline. The test skips only when node
// or npm is not installed.
func TestOfficialNodeSDK(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: cannot drive the sandbox with Onfleet's Node SDK")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed: cannot install Onfleet's Node SDK")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "drive.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "onfleet-sdk", name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	install := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline")
	install.Dir = dir
	installOut, err := install.CombinedOutput()
	require.NoError(t, err, "npm ci (installing @onfleet/node-onfleet 1.4.0):\n%s", installOut)

	rc, hookURL := newReceiver(t, false)
	b := setup(t, Options{RateLimit: DefaultRateLimit, BatchDelay: 50 * time.Millisecond,
		WebhookSecret: webhookSecret, WebhookStep: time.Hour, Seed: 5}, 0)

	outFile := filepath.Join(dir, "out.json")
	drive := exec.CommandContext(ctx, node, "drive.mjs")
	drive.Dir = dir
	drive.Env = append(os.Environ(), "SANDBOX_URL="+b.url, "API_KEY="+apiKey, "HOOK_URL="+hookURL, "OUT_FILE="+outFile)
	driveOut, err := drive.CombinedOutput()
	require.NoError(t, err, "node drive.mjs:\n%s", driveOut)
	raw, err := os.ReadFile(outFile)
	require.NoError(t, err, "node drive.mjs wrote nothing:\n%s", driveOut)

	type sdkError struct {
		Name, Message, Request string
		Status                 int
		Cause                  string
	}
	var out struct {
		Fatal         map[string]any
		VerifyKey     bool
		Webhook       Webhook
		Task          Task
		Job           struct{ JobID, Status string }
		Report        BatchJobReport
		Got           Task
		Page          taskPage
		Matched       []Task
		Webhooks      []Webhook
		UnknownTask   sdkError
		UnknownPath   sdkError
		WrongMethod   sdkError
		Deleted       int
		WebhooksAfter []Webhook
	}
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	require.Nil(t, out.Fatal, "the SDK threw:\n%s\n%s", raw, driveOut)

	require.True(t, out.VerifyKey, "GET /auth/test with Basic base64(apiKey), no colon")
	require.Len(t, out.Webhook.ID, 24)
	require.Equal(t, TriggerTaskBatchCreateJobCompleted, out.Webhook.Trigger)
	require.True(t, out.Webhook.IsEnabled)

	require.Len(t, out.Task.ID, 24)
	require.Len(t, out.Job.JobID, 24)
	require.Equal(t, BatchPending, out.Job.Status)
	require.Equal(t, BatchCompletedWithErrors, out.Report.Status)
	require.Equal(t, 3, out.Report.TasksReceived)
	require.Equal(t, 2, out.Report.TasksCreated)
	require.Equal(t, 1, out.Report.TasksErrored)
	require.Equal(t, 1011, out.Report.Errors[0].ErrorCode)
	require.Len(t, out.Report.FailedTasks, 1)
	refs := []string{}
	for _, task := range out.Report.NewTasks {
		ext, _ := externalID(task)
		refs = append(refs, ext)
	}
	require.ElementsMatch(t, []string{"SDK-2", "SDK-3"}, refs)

	require.Equal(t, out.Task.ID, out.Got.ID)
	require.Len(t, out.Page.Tasks, 3, "the task and the two the batch created")
	require.Empty(t, out.Page.LastID)
	require.Len(t, out.Matched, 1)
	require.Len(t, out.Webhooks, 1)

	// SDK 1.4.0 reads the error body as JSON, classifies it by message.error, then fails to
	// build its error ("HttpError is not a constructor": its error classes are arrow
	// functions). That message is still the proof the body was Onfleet's envelope with a 1xxx
	// code outside 1100-1108: a plain-text body fails earlier, in res.json(), with "invalid json".
	for name, e := range map[string]sdkError{"unknown task": out.UnknownTask, "unknown path": out.UnknownPath, "wrong method": out.WrongMethod} {
		require.Equal(t, sdkError{Name: "TypeError", Message: "HttpError is not a constructor"}, e, name)
	}

	require.Equal(t, http.StatusOK, out.Deleted)
	require.Empty(t, out.WebhooksAfter)

	// The registered webhook got the job's completion, signed (the receiver checks signatures).
	require.Eventually(t, func() bool { return len(rc.payloads("")) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, TriggerTaskBatchCreateJobCompleted, rc.payloads("")[0].TriggerID)

	st := b.stats(t)
	require.Zero(t, st.Requests.Unauthorized)
	require.Zero(t, st.Requests.RateLimited, "the SDK keeps under the limit")
	require.EqualValues(t, 3, st.TasksCreated)
	require.EqualValues(t, 1, st.RequestsByRoute["POST /tasks/batch-async"])
	require.EqualValues(t, 2, st.RequestsByRoute["GET /tasks/{id}"])
	require.EqualValues(t, 2, st.RequestsByRoute[routeUnmatched], "the clone and the PUT")
}
