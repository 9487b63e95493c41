package notify

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// slackServer is an httptest stand-in for a Slack incoming webhook.
type slackServer struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	statuses []int // answered in turn; 200 once they run out
}

const slackPath = "/services/T000/B000/SECRETTOKEN"

func startSlack(t *testing.T, statuses ...int) *slackServer {
	t.Helper()
	s := &slackServer{statuses: statuses}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != slackPath || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "invalid_request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, body)
		status := http.StatusOK
		if len(s.statuses) > 0 {
			status, s.statuses = s.statuses[0], s.statuses[1:]
		}
		s.mu.Unlock()
		if status != http.StatusOK {
			http.Error(w, "invalid_token", status)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *slackServer) received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

func TestSlackSendsIncomingWebhookJSON(t *testing.T) {
	t.Parallel()
	slack := startSlack(t)
	b := setup(t, Config{SlackWebhookURL: slack.URL + slackPath}, testOpts{})

	args := SlackArgs{
		Title:    "Quarantined carrier status",
		Text:     "onfleet sent a status we do not know: <!channel> & more",
		Fields:   map[string]string{"carrier": "onfleet", "status": "taskTeleported", "order": "SO-9"},
		Severity: "alarm",
	}
	requireCompleted(t, b.work(t, args))

	bodies := slack.received()
	require.Len(t, bodies, 1)
	want := `{
	  "text": ":rotating_light: Quarantined carrier status: onfleet sent a status we do not know: &lt;!channel&gt; &amp; more",
	  "blocks": [
	    {"type": "header", "text": {"type": "plain_text", "text": ":rotating_light: Quarantined carrier status", "emoji": true}},
	    {"type": "section", "text": {"type": "mrkdwn", "text": "onfleet sent a status we do not know: &lt;!channel&gt; &amp; more"}},
	    {"type": "section", "fields": [
	      {"type": "mrkdwn", "text": "*carrier*\nonfleet"},
	      {"type": "mrkdwn", "text": "*order*\nSO-9"},
	      {"type": "mrkdwn", "text": "*status*\ntaskTeleported"}
	    ]}
	  ]
	}`
	require.JSONEq(t, want, string(bodies[0]))

	rows := b.notifications(t)
	require.Len(t, rows, 1)
	require.Equal(t, "slack", rows[0].Kind)
	require.Equal(t, "sent", rows[0].Outcome)
	require.Equal(t, strings.TrimPrefix(slack.URL, "http://"), rows[0].Target, "the host only: the URL is a secret")
	require.Equal(t, "Quarantined carrier status", rows[0].Subject)
	require.Contains(t, rows[0].Body, "status: taskTeleported")
}

func TestSlackNon2xxFailsWithoutLeakingTheURL(t *testing.T) {
	t.Parallel()
	slack := startSlack(t, http.StatusForbidden)
	b := setup(t, Config{SlackWebhookURL: slack.URL + slackPath}, testOpts{})

	msg := requireFailed(t, b.work(t, SlackArgs{Title: "x", Severity: "info"}))
	require.Contains(t, msg, "HTTP 403")
	require.Contains(t, msg, "invalid_token")
	require.NotContains(t, msg, "SECRETTOKEN")
	require.Empty(t, b.notifications(t))
}

func TestSlackUnreachableFailsWithoutLeakingTheURL(t *testing.T) {
	t.Parallel()
	slack := startSlack(t)
	slack.Close() // nothing listens any more
	b := setup(t, Config{SlackWebhookURL: slack.URL + slackPath}, testOpts{})

	msg := requireFailed(t, b.work(t, SlackArgs{Title: "x", Severity: "info"}))
	require.Contains(t, msg, "connect")
	require.NotContains(t, msg, "SECRETTOKEN")
}

func TestSlackMessageFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		severity, emoji string
	}{
		{"alarm", ":rotating_light:"},
		{"resolved", ":white_check_mark:"},
		{"info", ":information_source:"},
		{"", ":information_source:"},
		{"weird", ":information_source:"},
	}
	for _, tt := range tests {
		msg := slackMessageFor(SlackArgs{Title: "Backlog", Severity: tt.severity})
		require.Equal(t, tt.emoji+" Backlog: ", msg.Text, tt.severity)
		require.Equal(t, tt.emoji+" Backlog", msg.Blocks[0].Text.Text, tt.severity)
		require.Len(t, msg.Blocks, 1, "no text, no fields: the header alone")
	}

	// Slack rejects a header over 150 characters and more than 10 fields in a section.
	fields := map[string]string{}
	for i := range 23 {
		fields[fmt.Sprintf("k%02d", i)] = "v"
	}
	msg := slackMessageFor(SlackArgs{Title: strings.Repeat("t", 400), Text: strings.Repeat("x", 5000), Fields: fields, Severity: "alarm"})
	require.Len(t, []rune(msg.Blocks[0].Text.Text), slackHeaderMax)
	require.Len(t, []rune(msg.Blocks[1].Text.Text), slackSectionMax)
	require.Len(t, msg.Blocks, 5)
	require.Len(t, msg.Blocks[2].Fields, 10)
	require.Len(t, msg.Blocks[4].Fields, 3)
	require.Equal(t, "*k22*\nv", msg.Blocks[4].Fields[2].Text)
	_, err := json.Marshal(msg)
	require.NoError(t, err)
}
