package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/riverqueue/river"

	"github.com/waybill/waybill/internal/truncate"
)

type slackWorker struct {
	river.WorkerDefaults[SlackArgs]
	n *Notifier
}

func (w *slackWorker) Work(ctx context.Context, job *river.Job[SlackArgs]) error {
	n := w.n
	msg := slackMessageFor(job.Args)
	o := outcome{kind: "slack", subject: job.Args.Title, body: slackPlain(job.Args)}
	if n.slackURL == nil {
		o.skipReason = "SLACK_WEBHOOK_URL is not set"
		return finish(ctx, n, job, o)
	}
	o.target = n.slackURL.Host
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	if err := n.post(ctx, n.slackURL, http.Header{}, body); err != nil {
		return fmt.Errorf("slack: %w", err)
	}
	return finish(ctx, n, job, o)
}

// slackMessage is an incoming-webhook payload: text is the fallback for notifications, blocks
// are what the channel shows.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"` // header, section, context
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type  string `json:"type"` // plain_text or mrkdwn
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// Slack's limits on block text; longer text is cut rather than rejected with HTTP 400.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
	slackFieldMax   = 2000
	slackFieldsMax  = 10 // per section
)

var severityEmoji = map[string]string{
	"alarm":    ":rotating_light:",
	"resolved": ":white_check_mark:",
	"info":     ":information_source:",
}

func slackMessageFor(a SlackArgs) slackMessage {
	emoji, ok := severityEmoji[a.Severity]
	if !ok {
		emoji = severityEmoji["info"]
	}
	title := a.Title
	if title == "" {
		title = "Waybill"
	}
	msg := slackMessage{
		Text: truncate.Runes(emoji+" "+slackEscape(title)+": "+slackEscape(a.Text), slackSectionMax),
		Blocks: []slackBlock{{
			Type: "header",
			Text: &slackText{Type: "plain_text", Text: truncate.Runes(emoji+" "+oneLine(title), slackHeaderMax), Emoji: true},
		}},
	}
	if a.Text != "" {
		msg.Blocks = append(msg.Blocks, slackBlock{
			Type: "section",
			Text: &slackText{Type: "mrkdwn", Text: truncate.Runes(slackEscape(a.Text), slackSectionMax)},
		})
	}
	var fields []slackText
	for _, k := range slices.Sorted(maps.Keys(a.Fields)) {
		fields = append(fields, slackText{
			Type: "mrkdwn",
			Text: truncate.Runes("*"+slackEscape(k)+"*\n"+slackEscape(a.Fields[k]), slackFieldMax),
		})
	}
	for chunk := range slices.Chunk(fields, slackFieldsMax) {
		msg.Blocks = append(msg.Blocks, slackBlock{Type: "section", Fields: chunk})
	}
	return msg
}

// slackPlain is what the message said, for waybill.notifications and the log.
func slackPlain(a SlackArgs) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s\n%s", a.Severity, a.Title, a.Text)
	for _, k := range slices.Sorted(maps.Keys(a.Fields)) {
		fmt.Fprintf(&b, "\n%s: %s", k, a.Fields[k])
	}
	return b.String()
}

// slackEscape stops text from a carrier (a quarantined status, a reason) from being read as a
// link or a mention such as <!channel>: Slack wants exactly these three escaped.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
