package generic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/truncate"
)

// CreateBatchConfig is the request that creates many tasks at once and answers with each
// task's outcome. Its headers and credential are create_task's, and each task in its body is
// create_task.body rendered for that task's order; results are matched to orders by the
// reference each carries, never by position.
type CreateBatchConfig struct {
	// URL is fixed (one request carries many orders, so it names none); ${VAR} and
	// ${VAR:-default} are read from the environment.
	URL     string            `yaml:"url"`
	Method  string            `yaml:"method"`  // POST (default), PUT or PATCH
	Headers map[string]string `yaml:"headers"` // added to create_task.headers
	// Max is the most orders one request carries; required, at least 2.
	Max int `yaml:"max"`
	// ItemsKey names the body's list: {"<items_key>": [task, …]}. Without it the body is the
	// list itself.
	ItemsKey string `yaml:"items_key"`
	// Timeout bounds a batch request, which may take longer than one task's; 0 means the
	// carrier's timeout.
	Timeout  time.Duration       `yaml:"timeout"`
	Response BatchResponseConfig `yaml:"response"`
}

// BatchResponseConfig says where each task's outcome is in a batch answer. Results is the path
// of the list of results (without it the answer is the list); every other field is a path
// within one result.
type BatchResponseConfig struct {
	Results string `yaml:"results"`
	// Reference is the order's external id, as create_task.body sent it: required, since
	// results are matched by it. A result without one is ignored.
	Reference string `yaml:"reference"`
	// TaskID is the created task's id (required); a result with one is created.
	TaskID      string `yaml:"task_id"`
	TrackingURL string `yaml:"tracking_url"` // optional
	// Error is the carrier's explanation, present when it refused that task (required): the
	// order is rejected with it. A result with neither a task id nor an error was not created
	// and its order is sent again.
	Error string `yaml:"error"`
	// Warning is optional: a created task's warning, kept in the order's history.
	Warning string `yaml:"warning"`
}

// compiledBatch is a checked create_batch.
type compiledBatch struct {
	request  *compiledRequest // method, headers and timeout; no templates
	url      string
	max      int
	itemsKey []byte // the key as JSON; nil: the body is the list
	results  Path   // zero: the answer is the list
	// Within one result:
	reference, taskID, trackingURL, errorText, warning Path
}

func (c *compiler) createBatch(cfg CreateBatchConfig, createHeader http.Header) *compiledBatch {
	const prefix = "create_batch"
	b := &compiledBatch{
		request: &compiledRequest{
			field:   prefix,
			method:  strings.ToUpper(strings.TrimSpace(cfg.Method)),
			header:  c.headers(prefix+".headers", cfg.Headers, createHeader),
			timeout: cfg.Timeout,
		},
		max: cfg.Max,
	}
	if b.request.method == "" {
		b.request.method = http.MethodPost
	}
	if !slices.Contains(createMethods, b.request.method) {
		c.fail(prefix+".method", "%q is not one of %s", cfg.Method, strings.Join(createMethods, ", "))
	}
	b.url = c.batchURL(prefix+".url", cfg.URL)
	switch {
	case cfg.Max == 0:
		c.fail(prefix+".max", "required: the most orders one request may carry, at least 2")
	case cfg.Max < 2:
		c.fail(prefix+".max", "must be at least 2 (an order on its own goes out with create_task)")
	}
	if cfg.ItemsKey != "" {
		b.itemsKey, _ = json.Marshal(cfg.ItemsKey) // a string always encodes
	}
	if cfg.Timeout < 0 {
		c.fail(prefix+".timeout", "must not be negative")
	}
	b.results = c.path(prefix+".response.results", cfg.Response.Results)
	b.reference = c.requiredPath(prefix+".response.reference", cfg.Response.Reference)
	b.taskID = c.requiredPath(prefix+".response.task_id", cfg.Response.TaskID)
	b.trackingURL = c.path(prefix+".response.tracking_url", cfg.Response.TrackingURL)
	b.errorText = c.requiredPath(prefix+".response.error", cfg.Response.Error)
	b.warning = c.path(prefix+".response.warning", cfg.Response.Warning)
	return b
}

// batchURL expands and checks create_batch.url: an absolute http or https URL, not a template.
func (c *compiler) batchURL(field, raw string) string {
	if strings.TrimSpace(raw) == "" {
		c.fail(field, "required")
		return ""
	}
	if strings.Contains(raw, "{{") {
		c.fail(field, "not a template: one request carries many orders, so its URL cannot name one")
		return ""
	}
	target := strings.TrimSpace(c.expand(field, raw))
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.fail(field, "%q is not an absolute http or https URL", target)
	}
	return target
}

// MaxBatch implements carrier.SyncBatchCarrier: create_batch.max, or 1 without create_batch,
// which dispatch reads as "no batches" (every order then goes out with CreateTask).
func (c *Carrier) MaxBatch() int {
	if c.cfg.batch == nil {
		return 1
	}
	return c.cfg.batch.max
}

// CreateBatchSync implements carrier.SyncBatchCarrier: the create_batch request, with each
// order's task rendered by create_task.body. An order whose payload the template cannot render
// is refused without being sent. Results are matched to orders by reference; an order without
// a result was not created (dispatch sends it again). Errors concern the whole request and are
// classified as CreateTask's.
func (c *Carrier) CreateBatchSync(ctx context.Context, batchID int64, reqs []carrier.Request) (carrier.BatchResult, error) {
	b := c.cfg.batch
	if b == nil {
		// Dispatch never calls it (MaxBatch is 1); refusing the batch as a whole sends its
		// orders one by one.
		return carrier.BatchResult{}, &carrier.Error{Carrier: c.name, Class: carrier.Rejected,
			Message: "carrier " + c.name + " declares no create_batch"}
	}
	res := carrier.BatchResult{Created: map[string]carrier.CreatedTask{}, Refused: map[string]string{}}
	sent := make(map[string]bool, len(reqs))
	var body bytes.Buffer
	if b.itemsKey != nil {
		body.WriteByte('{')
		body.Write(b.itemsKey)
		body.WriteByte(':')
	}
	body.WriteByte('[')
	for _, req := range reqs {
		task, err := c.cfg.create.renderBody(orderData(req))
		if err != nil {
			res.Refused[req.ExternalID] = unrenderable(err)
			continue
		}
		if len(sent) > 0 {
			body.WriteByte(',')
		}
		// Valid JSON (renderBody checked it), so Compact cannot fail.
		_ = json.Compact(&body, task)
		sent[req.ExternalID] = true
	}
	body.WriteByte(']')
	if b.itemsKey != nil {
		body.WriteByte('}')
	}
	if len(sent) == 0 {
		return res, nil // nothing could be sent
	}

	status, doc, err := c.send(ctx, b.request, b.url, body.Bytes(), "")
	if err != nil {
		return carrier.BatchResult{}, err
	}
	if status < 200 || status > 299 {
		return carrier.BatchResult{}, c.answerError(b.request, status, doc)
	}
	if err := c.readBatchAnswer(ctx, batchID, b, doc, sent, res); err != nil {
		// The tasks may well exist; only a lookup can tell.
		return carrier.BatchResult{}, &carrier.Error{Carrier: c.name, Class: carrier.Transient, StatusCode: status, Ambiguous: true,
			Message: err.Error() + ": " + truncate.Runes(string(doc.raw), 200)}
	}
	return res, nil
}

// readBatchAnswer adds each result of a batch answer to res. An answer that names none of the
// orders sent (no list, or a reference path that finds nothing) is an error: taken as "none
// created", it would send every order again, and again.
func (c *Carrier) readBatchAnswer(ctx context.Context, batchID int64, b *compiledBatch, doc answer, sent map[string]bool, res carrier.BatchResult) error {
	list := doc.value
	if !b.results.IsZero() {
		list, _ = b.results.Lookup(doc.value)
	}
	results, ok := list.([]any)
	if !ok {
		where := b.results.String()
		if where == "" {
			where = "the answer's root"
		}
		return fmt.Errorf("batch answer has no list at %s", where)
	}
	matched, ignored := 0, 0
	for _, r := range results {
		ref, ok := b.reference.Text(r)
		if !ok || !sent[ref] {
			ignored++
			continue
		}
		matched++
		if _, done := res.Created[ref]; done {
			continue // the first result for an order wins
		}
		if id, ok := b.taskID.Text(r); ok && id != "" {
			tracking, _ := b.trackingURL.Text(r)
			warning, _ := resultText(b.warning, r)
			res.Created[ref] = carrier.CreatedTask{Task: carrier.Task{ID: id, TrackingURL: tracking}, Warning: warning}
			delete(res.Refused, ref)
			continue
		}
		if _, done := res.Refused[ref]; done {
			continue
		}
		if msg, ok := resultText(b.errorText, r); ok {
			res.Refused[ref] = msg
		}
	}
	if matched == 0 {
		return fmt.Errorf("batch answer has no result whose %s is a reference it was sent (check create_batch.response)", b.reference)
	}
	logger := c.logger.With("carrier", c.name, "batch_id", batchID)
	if ignored > 0 {
		logger.WarnContext(ctx, "batch answer has results that name no order of the batch; ignored", "results", ignored)
	}
	if missing := len(sent) - len(res.Created) - countSent(res.Refused, sent); missing > 0 {
		logger.WarnContext(ctx, "batch answer has no outcome for some orders; they will be sent again", "orders", missing)
	}
	return nil
}

// countSent counts the keys of m that were sent.
func countSent(m map[string]string, sent map[string]bool) int {
	n := 0
	for k := range m {
		if sent[k] {
			n++
		}
	}
	return n
}

// resultText is the text at p in one result, trimmed and at most 1,000 bytes: a string as it
// is, a number or true as written, an object or a list as JSON. ok is false when p is not
// configured or the value is missing, null, false, empty or blank.
func resultText(p Path, result any) (string, bool) {
	v, ok := p.Lookup(result)
	if !ok || v == nil || v == false {
		return "", false
	}
	var text string
	switch x := v.(type) {
	case map[string]any, []any:
		if x, ok := x.(map[string]any); ok && len(x) == 0 {
			return "", false
		}
		if x, ok := x.([]any); ok && len(x) == 0 {
			return "", false
		}
		text, _ = jsonValue(x)
	default:
		text, _ = scalarText(v)
	}
	text = strings.TrimSpace(text)
	if text == "" {
		return "", false
	}
	return truncate.Runes(text, 1000), true
}
