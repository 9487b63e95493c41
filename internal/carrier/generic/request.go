package generic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/orders"
	"github.com/waybill/waybill/internal/truncate"
)

// requestData is what a body template renders: the order. Its values are raw; templates quote
// them with json.
type requestData struct {
	OrderID    int64
	ExternalID string
	Kind       orders.Kind
	Pickup     bool // Kind is pickup: a return collected from the recipient
	Payload    orders.Payload
}

// urlData is what a URL template renders, every value percent-encoded so that it is safe in a
// path segment and in a query.
type urlData struct {
	OrderID    int64
	ExternalID string
	Kind       orders.Kind
}

// lookupData is what find_task's templates render: a lookup knows only the external id
// (percent-encoded in its URL, raw in its body).
type lookupData struct {
	ExternalID string
}

// templateFuncs are the helpers a body template may call. Each prints one complete JSON value.
var templateFuncs = template.FuncMap{
	"json":    jsonValue,
	"ms":      unixMillis,
	"unix":    unixSeconds,
	"rfc3339": rfc3339,
}

// jsonValue is v as JSON: a quoted, escaped string for text, an array for a list, null for nil.
func jsonValue(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// timeArg reads a time.Time or *time.Time; ok is false for a nil pointer.
func timeArg(v any) (t time.Time, ok bool, err error) {
	switch x := v.(type) {
	case time.Time:
		return x, true, nil
	case *time.Time:
		if x == nil {
			return time.Time{}, false, nil
		}
		return *x, true, nil
	case nil:
		return time.Time{}, false, nil
	}
	return time.Time{}, false, fmt.Errorf("expected a time, got %T", v)
}

// unixMillis is a time as a JSON number of milliseconds since 1970, null for none.
func unixMillis(v any) (string, error) {
	t, ok, err := timeArg(v)
	if err != nil || !ok {
		return "null", err
	}
	return strconv.FormatInt(t.UnixMilli(), 10), nil
}

// unixSeconds is a time as a JSON number of seconds since 1970, null for none.
func unixSeconds(v any) (string, error) {
	t, ok, err := timeArg(v)
	if err != nil || !ok {
		return "null", err
	}
	return strconv.FormatInt(t.Unix(), 10), nil
}

// rfc3339 is a time as a quoted RFC 3339 JSON string in UTC, null for none.
func rfc3339(v any) (string, error) {
	t, ok, err := timeArg(v)
	if err != nil || !ok {
		return "null", err
	}
	return strconv.Quote(t.UTC().Format(time.RFC3339)), nil
}

// escapeAll percent-encodes every byte but RFC 3986's unreserved characters, so a value is
// safe anywhere in a URL.
func escapeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// compiledRequest is one configured request, ready to render for an order.
type compiledRequest struct {
	// field is the request's section in the carriers file, for messages: "create_task".
	field  string
	method string
	url    *template.Template // nil for create_batch, whose URL is fixed
	// header holds the configured headers and the credential.
	header            http.Header
	body              *template.Template // nil: no body
	idempotencyHeader string
	// timeout bounds the request instead of the carrier's, when set (create_batch.timeout).
	timeout     time.Duration
	taskID      Path
	trackingURL Path
	// lookup: find_task, whose templates see only lookupData.
	lookup bool
	list   Path // find_task only
}

// renderError is a template that failed for an order; part is "url" or "body".
type renderError struct {
	part string
	err  error
}

func (e *renderError) Error() string { return e.part + ": " + e.err.Error() }
func (e *renderError) Unwrap() error { return e.err }

// render builds the request's URL and body for an order.
func (r *compiledRequest) render(req carrier.Request) (target string, body []byte, err error) {
	var urlValues, bodyValues any = urlData{OrderID: req.OrderID, ExternalID: escapeAll(req.ExternalID), Kind: req.Kind}, orderData(req)
	if r.lookup {
		urlValues, bodyValues = lookupData{ExternalID: escapeAll(req.ExternalID)}, lookupData{ExternalID: req.ExternalID}
	}
	var buf bytes.Buffer
	if err := r.url.Execute(&buf, urlValues); err != nil {
		return "", nil, &renderError{"url", err}
	}
	target = strings.TrimSpace(buf.String())
	u, err := url.Parse(target)
	if err != nil {
		return "", nil, &renderError{"url", err}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", nil, &renderError{"url", fmt.Errorf("%q is not an absolute http or https URL", target)}
	}
	if r.body == nil {
		return target, nil, nil
	}
	body, err = r.renderBody(bodyValues)
	if err != nil {
		return "", nil, err
	}
	return target, body, nil
}

// renderBody renders the body template with data, checking that it is JSON.
func (r *compiledRequest) renderBody(data any) ([]byte, error) {
	var buf bytes.Buffer
	if err := r.body.Execute(&buf, data); err != nil {
		return nil, &renderError{"body", err}
	}
	if !json.Valid(buf.Bytes()) {
		return nil, &renderError{"body", fmt.Errorf("the template did not render valid JSON: %s", truncate.Runes(buf.String(), 300))}
	}
	return buf.Bytes(), nil
}

// orderData is what a body template sees of req.
func orderData(req carrier.Request) requestData {
	return requestData{OrderID: req.OrderID, ExternalID: req.ExternalID, Kind: req.Kind, Pickup: req.Kind == orders.KindPickup, Payload: req.Payload}
}

// sampleRequests are orders every template must render: the least a valid payload holds, and
// everything it can hold, with characters that need escaping in JSON and in URLs.
func sampleRequests() []carrier.Request {
	after := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	before := after.Add(8 * time.Hour)
	return []carrier.Request{
		{
			OrderID: 1, ExternalID: "SAMPLE-1", Kind: orders.KindDelivery,
			Payload: orders.Payload{
				Recipient: orders.Recipient{Name: "Ada Lovelace", Phone: "+14155550100"},
				Address:   orders.Address{Line1: "1 Market St", City: "San Francisco", Country: "US"},
			},
		},
		{
			OrderID: 9007199254740993, ExternalID: `SO 2/3?x=1&y="ü"#`, Kind: orders.KindPickup,
			Payload: orders.Payload{
				Recipient: orders.Recipient{Name: `O'Brien "Bob" <b>`, Phone: "+442071838750", Email: "bob@example.com"},
				Address: orders.Address{Line1: `12 St James's Square`, Line2: "Flat 3\\4", City: "London", Region: "Greater London",
					PostalCode: "SW1Y 4JH", Country: "GB"},
				Notes:  "Ring twice.\nThen wait: \"patience\" & <care>\t✓",
				Window: &orders.Window{After: &after, Before: &before},
				Items:  []orders.Item{{SKU: "SKU-1", Quantity: 2}, {SKU: "SKU-\"2\"", Quantity: 1}},
			},
		},
		{
			OrderID: 3, ExternalID: "SAMPLE-3", Kind: orders.KindDelivery,
			Payload: orders.Payload{
				Recipient: orders.Recipient{Name: "Grace Hopper", Phone: "+12025550100"},
				Address:   orders.Address{Line1: "1 Navy Way", City: "Arlington", Country: "US"},
				Window:    &orders.Window{}, // a window with neither end
			},
		},
	}
}

var (
	createMethods = []string{http.MethodPost, http.MethodPut, http.MethodPatch}
	findMethods   = []string{http.MethodGet, http.MethodPost}
)

// request compiles the parts create_task and find_task share.
func (c *compiler) request(prefix, rawURL, method, defaultMethod string, methods []string, body string, header http.Header) *compiledRequest {
	r := &compiledRequest{field: prefix, header: header}
	r.method = strings.ToUpper(strings.TrimSpace(method))
	if r.method == "" {
		r.method = defaultMethod
	}
	if !slices.Contains(methods, r.method) {
		c.fail(prefix+".method", "%q is not one of %s", method, strings.Join(methods, ", "))
	}
	if strings.TrimSpace(rawURL) == "" {
		c.fail(prefix+".url", "required")
	} else {
		r.url = c.template(prefix+".url", c.expand(prefix+".url", rawURL))
	}
	if strings.TrimSpace(body) != "" {
		r.body = c.template(prefix+".body", body)
	}
	return r
}

func (c *compiler) template(field, text string) *template.Template {
	t, err := template.New(field).Funcs(templateFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		c.fail(field, "%v", err)
		return nil
	}
	return t
}

// tryRender renders the request for every sample order, so that a template that fails on some
// orders (a field that does not exist, a window that is not there) fails at start instead.
func (c *compiler) tryRender(prefix string, r *compiledRequest) {
	for _, sample := range sampleRequests() {
		_, _, err := r.render(sample)
		if re := (*renderError)(nil); errors.As(err, &re) {
			c.fail(prefix+"."+re.part, "fails on a sample order (%s, %s): %v", sample.ExternalID, sample.Kind, re.err)
			return
		}
	}
}

func (c *compiler) createTask(cfg CreateTaskConfig) *compiledRequest {
	before := len(c.problems)
	header := c.headers("create_task.headers", cfg.Headers, nil)
	c.auth(cfg.Auth, header)
	r := c.request("create_task", cfg.URL, cfg.Method, http.MethodPost, createMethods, cfg.Body, header)
	if r.body == nil && strings.TrimSpace(cfg.Body) == "" {
		c.fail("create_task.body", "required: a template rendering the order as the carrier's JSON")
	}
	if cfg.IdempotencyHeader != "" {
		if !validHeaderName(cfg.IdempotencyHeader) {
			c.fail("create_task.idempotency_header", "%q is not a header name", cfg.IdempotencyHeader)
		}
		r.idempotencyHeader = cfg.IdempotencyHeader
	}
	r.taskID = c.requiredPath("create_task.response.task_id", cfg.Response.TaskID)
	r.trackingURL = c.path("create_task.response.tracking_url", cfg.Response.TrackingURL)
	if len(c.problems) == before {
		c.tryRender("create_task", r)
	}
	return r
}

func (c *compiler) findTask(cfg FindTaskConfig, createHeader http.Header) *compiledRequest {
	before := len(c.problems)
	header := c.headers("find_task.headers", cfg.Headers, createHeader)
	r := c.request("find_task", cfg.URL, cfg.Method, http.MethodGet, findMethods, cfg.Body, header)
	r.lookup = true
	if r.method == http.MethodGet && r.body != nil {
		c.fail("find_task.body", "a GET sends no body: use method POST, or put the external id in the URL")
	}
	r.list = c.path("find_task.response.list", cfg.Response.List)
	r.taskID = c.requiredPath("find_task.response.task_id", cfg.Response.TaskID)
	r.trackingURL = c.path("find_task.response.tracking_url", cfg.Response.TrackingURL)
	if len(c.problems) == before {
		c.tryRender("find_task", r)
	}
	return r
}

// headers reads configured headers over base (cloned), expanding ${VAR}.
func (c *compiler) headers(field string, headers map[string]string, base http.Header) http.Header {
	h := base.Clone()
	if h == nil {
		h = http.Header{}
	}
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := field + "." + name
		if !validHeaderName(name) {
			c.fail(f, "%q is not a header name", name)
			continue
		}
		v := c.expand(f, headers[name])
		if strings.ContainsAny(v, "\r\n\x00") {
			c.fail(f, "the value contains a line break or NUL")
			continue
		}
		h.Set(name, v)
	}
	return h
}

// auth adds the credential to header.
func (c *compiler) auth(cfg *AuthConfig, header http.Header) {
	if cfg == nil {
		return
	}
	const field = "create_task.auth"
	name := cfg.Header
	if name == "" {
		name = "Authorization"
	}
	if !validHeaderName(name) {
		c.fail(field+".header", "%q is not a header name", name)
		return
	}
	if header.Get(name) != "" {
		c.fail(field+".header", "create_task.headers sets %s too; keep one", name)
	}
	set := 0
	var value string
	if cfg.ValueEnv != "" {
		set++
		value = c.secret(field+".value_env", cfg.ValueEnv)
	}
	if cfg.BearerEnv != "" {
		set++
		value = "Bearer " + c.secret(field+".bearer_env", cfg.BearerEnv)
	}
	if b := cfg.Basic; b != nil {
		set++
		user := c.secret(field+".basic.username_env", b.UsernameEnv)
		var password string
		if b.PasswordEnv != "" {
			password = c.secret(field+".basic.password_env", b.PasswordEnv)
		}
		value = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	}
	if set != 1 {
		c.fail(field, "set exactly one of value_env, bearer_env and basic")
		return
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		c.fail(field, "the credential contains a line break or NUL")
		return
	}
	header.Set(name, value)
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
