package generic

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/carrier"
	"github.com/waybill/waybill/internal/orders"
)

const examplePath = "../../../examples/carriers.yaml"

// acmeEnv is the environment the example file needs.
func acmeEnv(baseURL string) map[string]string {
	env := map[string]string{
		"ACME_API_KEY":        "acme-test-key",
		"ACME_WEBHOOK_SECRET": testSecret,
	}
	if baseURL != "" {
		env["ACME_BASE_URL"] = baseURL
	}
	return env
}

func getenv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func exampleYAML(t testing.TB) string {
	t.Helper()
	raw, err := os.ReadFile(examplePath)
	require.NoError(t, err)
	return string(raw)
}

// exampleConfig is the example file's acme carrier read with env, after replacing each old
// text (which must occur) with its new one.
func exampleConfig(t testing.TB, env map[string]string, replace ...string) Config {
	t.Helper()
	doc := exampleYAML(t)
	for i := 0; i < len(replace); i += 2 {
		require.Contains(t, doc, replace[i])
		doc = strings.Replace(doc, replace[i], replace[i+1], 1)
	}
	cfgs, err := Parse([]byte(doc), getenv(env))
	require.NoError(t, err)
	require.Len(t, cfgs, 1)
	return cfgs[0]
}

// The shipped example loads as it is, with its secrets from the process environment.
// t.Setenv: not parallel.
func TestLoadFileExample(t *testing.T) {
	for k, v := range acmeEnv("") {
		t.Setenv(k, v)
	}
	cfgs, err := LoadFile(examplePath)
	require.NoError(t, err)
	require.Len(t, cfgs, 1)
	cfg := cfgs[0]
	require.Equal(t, "acme", cfg.Name)
	require.InDelta(t, 20, cfg.RateLimit, 0)
	require.Equal(t, 10*time.Second, cfg.Timeout)
	require.Equal(t, "Idempotency-Key", cfg.CreateTask.IdempotencyHeader)
	require.NotNil(t, cfg.FindTask)

	cc := cfg.compiled
	require.NotNil(t, cc)
	// ${ACME_BASE_URL:-…} fell back to its default.
	target, _, err := cc.create.render(sampleRequests()[0])
	require.NoError(t, err)
	require.Equal(t, "https://api.acme.example/v1/deliveries", target)
	require.Equal(t, "Bearer acme-test-key", cc.create.header.Get("Authorization"))
	require.Equal(t, "2024-06-01", cc.find.header.Get("Acme-Version"), "find_task inherits create_task's headers")
	require.Equal(t, [][]byte{[]byte(testSecret)}, cc.webhook.keys)

	// The example's point: Acme's "complete" means delivered.
	tr := cc.vocabulary.Translate(carrier.Event{TaskID: "dlv_1", CarrierStatus: "complete"})
	require.Equal(t, carrier.Translation{Outcome: carrier.OutcomeStatus, Status: orders.StatusDelivered}, tr)

	t.Setenv("ACME_API_KEY", "")
	_, err = LoadFile(examplePath)
	require.ErrorContains(t, err, `carrier "acme": create_task.auth.bearer_env: environment variable ACME_API_KEY is not set`)
	require.ErrorContains(t, err, "examples/carriers.yaml")

	_, err = LoadFile(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// minimalCarrier is the least a carrier declares; tests change it line by line.
const minimalCarrier = `carriers:
  - name: beta
    create_task:
      url: https://api.beta.example/tasks
      auth: {header: X-Api-Key, value_env: BETA_KEY}
      body: '{"ref": {{json .ExternalID}}}'
      response: {task_id: id}
    webhook:
      signature: {scheme: hmac-sha256-base64, header: X-Beta-Signature, secret_env: BETA_SECRET}
      task_id: task
      status: state
      time: at
    vocabulary: {done: delivered}
`

var betaEnv = map[string]string{"BETA_KEY": "k", "BETA_SECRET": "s"}

func TestParseMinimal(t *testing.T) {
	t.Parallel()
	cfgs, err := Parse([]byte(minimalCarrier), getenv(betaEnv))
	require.NoError(t, err)
	require.Len(t, cfgs, 1)
	cc := cfgs[0].compiled
	require.Equal(t, "POST", cc.create.method)
	require.Equal(t, "k", cc.create.header.Get("X-Api-Key"))
	require.Nil(t, cc.find)
	require.Equal(t, TimeRFC3339, cc.webhook.timeFormat)
	require.True(t, cc.webhook.eventID.IsZero())
}

// Every problem is reported, each naming its carrier and field.
func TestParseProblems(t *testing.T) {
	t.Parallel()

	// edit replaces old (which must occur) in minimalCarrier.
	edit := func(pairs ...string) string {
		s := minimalCarrier
		for i := 0; i < len(pairs); i += 2 {
			require.Contains(t, s, pairs[i])
			s = strings.Replace(s, pairs[i], pairs[i+1], 1)
		}
		return s
	}
	// batch declares create_batch with fields, in flow style.
	batch := func(fields string) string {
		return edit("    webhook:", "    create_batch: {"+fields+"}\n    webhook:")
	}
	const batchResponse = "response: {reference: ref, task_id: id, error: problem}"
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"not YAML", "carriers: [", nil, []string{"yaml:"}},
		{"empty", "", nil, []string{"empty"}},
		{"no carriers", "carriers: []\n", nil, []string{"carriers: declare at least one carrier"}},
		{"unknown top-level key", minimalCarrier + "carrier: x\n", nil, []string{"carrier: unknown field (line 14)"}},
		{"unknown key", edit("      body:", "      bdy: x\n      body:"), nil, []string{
			`carrier "beta": create_task.bdy: unknown field (line 6); known here: auth, body, headers, idempotency_header, method, response, url`,
		}},
		{"unknown nested key", edit("{task_id: id}", "{task_id: id, tracking: t}"), nil, []string{`carrier "beta": create_task.response.tracking: unknown field`}},
		{"wrong type", edit("  - name: beta\n", "  - name: beta\n    rate_limit: fast\n    timeout: 5\n"), nil, []string{
			`carrier "beta": rate_limit: "fast" is not a number (line 3)`,
			`carrier "beta": timeout: "5" is not a duration such as 10s or 1m30s (line 4)`,
		}},
		{"mapping for text", edit("url: https://api.beta.example/tasks", "url: {a: b}"), nil, []string{`carrier "beta": create_task.url: must be text, not a mapping or list`}},
		{"no name", edit("  - name: beta\n", "  - rate_limit: 1\n"), nil, []string{"carriers[0]: name: required"}},
		{"bad name", edit("name: beta", "name: Beta Co"), nil, []string{`carrier "Beta Co": name: "Beta Co" must match`}},
		{"onfleet", edit("name: beta", "name: onfleet"), nil, []string{`carrier "onfleet": name: "onfleet" is built into Waybill`}},
		{"twice", minimalCarrier + strings.TrimPrefix(minimalCarrier, "carriers:\n"), nil, []string{`carrier "beta": name: declared twice`}},
		{"negative rate", edit("  - name: beta\n", "  - name: beta\n    rate_limit: -1\n    timeout: -1s\n"), nil, []string{
			`carrier "beta": rate_limit: must be 0`, `carrier "beta": timeout: must not be negative`,
		}},
		{"missing env", minimalCarrier, map[string]string{}, []string{
			`carrier "beta": create_task.auth.value_env: environment variable BETA_KEY is not set`,
			`carrier "beta": webhook.signature.secret_env: environment variable BETA_SECRET is not set`,
		}},
		{"url env", edit("https://api.beta.example", "${BETA_URL}"), nil, []string{`carrier "beta": create_task.url: environment variable BETA_URL is not set`}},
		{"malformed env ref", edit("https://api.beta.example", "${BETA URL}"), nil, []string{`carrier "beta": create_task.url: malformed ${…}`}},
		{"no url", edit("url: https://api.beta.example/tasks", "method: POST"), nil, []string{`carrier "beta": create_task.url: required`}},
		{"relative url", edit("https://api.beta.example/tasks", "/tasks"), nil, []string{`carrier "beta": create_task.url: fails on a sample order`, "not an absolute http or https URL"}},
		{"url template", edit("/tasks", "/tasks/{{.ExternalID"), nil, []string{`carrier "beta": create_task.url: template:`}},
		{"method", edit("      body:", "      method: GET\n      body:"), nil, []string{`carrier "beta": create_task.method: "GET" is not one of POST, PUT, PATCH`}},
		{"no body", edit(`      body: '{"ref": {{json .ExternalID}}}'`+"\n", ""), nil, []string{`carrier "beta": create_task.body: required`}},
		{"body does not parse", edit("{{json .ExternalID}}", "{{json .ExternalID"), nil, []string{`carrier "beta": create_task.body: template: create_task.body:1: `}},
		{"body field missing", edit("{{json .ExternalID}}", "{{json .Payload.Addres}}"), nil, []string{`carrier "beta": create_task.body: fails on a sample order (SAMPLE-1, delivery)`, "can't evaluate field Addres"}},
		{"body unguarded window", edit("{{json .ExternalID}}", "{{ms .Payload.Window.After}}"), nil, []string{`carrier "beta": create_task.body: fails on a sample order (SAMPLE-1, delivery)`, "nil pointer"}},
		{"body not JSON", edit("{{json .ExternalID}}", "{{.ExternalID}}"), nil, []string{`carrier "beta": create_task.body: fails on a sample order`, "did not render valid JSON"}},
		{"unknown helper", edit("{{json .ExternalID}}", "{{quote .ExternalID}}"), nil, []string{`carrier "beta": create_task.body: template: create_task.body:1: function "quote" not defined`}},
		{"no task id path", edit("{task_id: id}", "{tracking_url: t}"), nil, []string{`carrier "beta": create_task.response.task_id: required`}},
		{"bad path", edit("{task_id: id}", "{task_id: data..id}"), nil, []string{`carrier "beta": create_task.response.task_id: path "data..id": step 2 is empty`}},
		{"two credentials", edit("value_env: BETA_KEY}", "value_env: BETA_KEY, bearer_env: BETA_KEY}"), nil, []string{`carrier "beta": create_task.auth: set exactly one of value_env, bearer_env and basic`}},
		{"no credential", edit("{header: X-Api-Key, value_env: BETA_KEY}", "{header: X-Api-Key}"), nil, []string{`carrier "beta": create_task.auth: set exactly one`}},
		{"bad env name", edit("value_env: BETA_KEY", "value_env: BETA-KEY"), nil, []string{`carrier "beta": create_task.auth.value_env: "BETA-KEY" is not an environment variable name`}},
		{"header twice", edit("      body:", "      headers: {X-Api-Key: x}\n      body:"), nil, []string{`carrier "beta": create_task.auth.header: create_task.headers sets X-Api-Key too`}},
		{"bad header name", edit("      body:", "      headers: {\"Bad Header\": x}\n      body:"), nil, []string{`carrier "beta": create_task.headers.Bad Header: "Bad Header" is not a header name`}},
		{"bad idempotency header", edit("      body:", "      idempotency_header: \"a b\"\n      body:"), nil, []string{`carrier "beta": create_task.idempotency_header: "a b" is not a header name`}},
		{"find without task id", edit("    webhook:", "    find_task: {url: 'https://api.beta.example/tasks/{{.ExternalID}}'}\n    webhook:"), nil, []string{`carrier "beta": find_task.response.task_id: required`}},
		{"find GET with body", edit("    webhook:", "    find_task: {url: 'https://x.example/t', body: '{}', response: {task_id: id}}\n    webhook:"), nil, []string{`carrier "beta": find_task.body: a GET sends no body`}},
		{"find method", edit("    webhook:", "    find_task: {url: 'https://x.example/t', method: DELETE, response: {task_id: id}}\n    webhook:"), nil, []string{`carrier "beta": find_task.method: "DELETE" is not one of GET, POST`}},
		{"find url field", edit("    webhook:", "    find_task: {url: 'https://x.example/{{.OrderID}}', response: {task_id: id}}\n    webhook:"), nil, []string{`carrier "beta": find_task.url: fails on a sample order`, "can't evaluate field OrderID"}},
		{"find body field", edit("    webhook:", "    find_task: {url: 'https://x.example/', method: POST, body: '{{json .Payload}}', response: {task_id: id}}\n    webhook:"), nil, []string{`carrier "beta": find_task.body: fails on a sample order`, "can't evaluate field Payload"}},
		{"batch not a mapping", edit("    webhook:", "    create_batch: yes\n    webhook:"), nil, []string{`carrier "beta": create_batch: must be a mapping of fields (line 8)`}},
		{"batch unknown key", batch("url: https://x.example/b, max: 2, item_key: d, " + batchResponse), nil, []string{
			`carrier "beta": create_batch.item_key: unknown field (line 8); known here: headers, items_key, max, method, response, timeout, url`,
		}},
		{"batch unknown response key", batch("url: https://x.example/b, max: 2, response: {reference: r, task_id: id, error: e, errors: x}"), nil, []string{
			`carrier "beta": create_batch.response.errors: unknown field (line 8); known here: error, reference, results, task_id, tracking_url, warning`,
		}},
		{"batch max not a number", batch("url: https://x.example/b, max: many, " + batchResponse), nil, []string{`carrier "beta": create_batch.max: "many" is not a whole number (line 8)`}},
		{"batch without max", batch("url: https://x.example/b, " + batchResponse), nil, []string{`carrier "beta": create_batch.max: required: the most orders one request may carry, at least 2`}},
		{"batch of one", batch("url: https://x.example/b, max: 1, " + batchResponse), nil, []string{`carrier "beta": create_batch.max: must be at least 2`}},
		{"batch without url", batch("max: 2, " + batchResponse), nil, []string{`carrier "beta": create_batch.url: required`}},
		{"batch url template", batch("url: 'https://x.example/{{.ExternalID}}', max: 2, " + batchResponse), nil, []string{`carrier "beta": create_batch.url: not a template`}},
		{"batch relative url", batch("url: /bulk, max: 2, " + batchResponse), nil, []string{`carrier "beta": create_batch.url: "/bulk" is not an absolute http or https URL`}},
		{"batch url env", batch("url: '${BULK_URL}/b', max: 2, " + batchResponse), nil, []string{`carrier "beta": create_batch.url: environment variable BULK_URL is not set`}},
		{"batch method", batch("url: https://x.example/b, method: GET, max: 2, " + batchResponse), nil, []string{`carrier "beta": create_batch.method: "GET" is not one of POST, PUT, PATCH`}},
		{"batch timeout", batch("url: https://x.example/b, max: 2, timeout: -1s, " + batchResponse), nil, []string{`carrier "beta": create_batch.timeout: must not be negative`}},
		{"batch header", batch("url: https://x.example/b, max: 2, headers: {\"Bad Header\": x}, " + batchResponse), nil, []string{`carrier "beta": create_batch.headers.Bad Header: "Bad Header" is not a header name`}},
		{"batch without response paths", batch("url: https://x.example/b, max: 2"), nil, []string{
			`carrier "beta": create_batch.response.reference: required`,
			`carrier "beta": create_batch.response.task_id: required`,
			`carrier "beta": create_batch.response.error: required`,
		}},
		{"batch bad path", batch("url: https://x.example/b, max: 2, response: {results: a..b, reference: r, task_id: id, error: e, warning: ' w'}"), nil, []string{
			`carrier "beta": create_batch.response.results: path "a..b": step 2 is empty`,
			`carrier "beta": create_batch.response.warning: path " w": step " w" has surrounding spaces`,
		}},
		{"scheme", edit("hmac-sha256-base64", "hmac-md5"), nil, []string{`carrier "beta": webhook.signature.scheme: "hmac-md5" is not one of hmac-sha256-base64, hmac-sha256-hex, hmac-sha512-base64, hmac-sha512-hex`}},
		{"no signature header", edit("header: X-Beta-Signature, ", ""), nil, []string{`carrier "beta": webhook.signature.header: required`}},
		{"secret encoding", edit("secret_env: BETA_SECRET}", "secret_env: BETA_SECRET, secret_encoding: hex}"), nil, []string{`carrier "beta": webhook.signature.secret_env: a secret in BETA_SECRET is not hex`}},
		{"three secrets", minimalCarrier, map[string]string{"BETA_KEY": "k", "BETA_SECRET": "a,b,c"}, []string{`carrier "beta": webhook.signature.secret_env: BETA_SECRET holds more than two secrets`}},
		{"no webhook paths", edit("      task_id: task\n      status: state\n      time: at\n", ""), nil, []string{
			`carrier "beta": webhook.task_id: required`, `carrier "beta": webhook.status: required`, `carrier "beta": webhook.time: required`,
		}},
		{"time format", edit("time: at", "time: at\n      time_format: iso"), nil, []string{`carrier "beta": webhook.time_format: "iso" is not one of rfc3339, unix, unix_ms`}},
		{"no vocabulary", edit("    vocabulary: {done: delivered}\n", ""), nil, []string{`carrier "beta": vocabulary: required`}},
		{"vocabulary words", edit("{done: delivered}", "{done: delivered, ok: complete, new: pending}"), nil, []string{
			`carrier "beta": vocabulary.new: "new": "pending" is not a status Waybill knows`,
			`carrier "beta": vocabulary.ok: "ok": "complete" is not a status Waybill knows`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := tt.env
			if env == nil {
				env = betaEnv
			}
			_, err := Parse([]byte(tt.yaml), getenv(env))
			require.Error(t, err)
			for _, want := range tt.want {
				require.ErrorContains(t, err, want)
			}
		})
	}
}

// A file with several broken carriers reports every one of them at once.
func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	bad := strings.Replace(minimalCarrier, "name: beta", "name: gamma", 1)
	bad = strings.Replace(bad, "{done: delivered}", "{done: finished}", 1)
	doc := minimalCarrier + strings.TrimPrefix(bad, "carriers:\n")
	_, err := Parse([]byte(doc), getenv(map[string]string{"BETA_SECRET": "s"}))
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, `carrier "beta": create_task.auth.value_env: environment variable BETA_KEY is not set`)
	require.Contains(t, msg, `carrier "gamma": create_task.auth.value_env: environment variable BETA_KEY is not set`)
	require.Contains(t, msg, `carrier "gamma": vocabulary.done: "done": "finished" is not a status Waybill knows`)
}

// YAML anchors and merge keys work; an alias that contains itself is refused, not walked forever.
func TestParseAnchors(t *testing.T) {
	t.Parallel()
	doc := strings.Replace(minimalCarrier, "    create_task:\n", "    create_task: &create\n", 1) +
		"  - name: delta\n    create_task: *create\n" +
		"    webhook: {signature: {scheme: hmac-sha256-hex, header: X-Sig, secret_env: BETA_SECRET}, task_id: t, status: s, time: at}\n" +
		"    vocabulary: {done: delivered}\n"
	cfgs, err := Parse([]byte(doc), getenv(betaEnv))
	require.NoError(t, err)
	require.Len(t, cfgs, 2)
	require.Equal(t, cfgs[0].CreateTask, cfgs[1].CreateTask)

	_, err = Parse([]byte("carriers: &a [*a]\n"), getenv(betaEnv))
	require.Error(t, err)
}

func TestNewRequiresParse(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Name: "hand-made"}, nil)
	require.ErrorContains(t, err, `"hand-made"`)
}

// FuzzParseConfig: no carriers file makes Parse panic or hang, and what it accepts builds.
func FuzzParseConfig(f *testing.F) {
	f.Add(exampleYAML(f))
	f.Add(minimalCarrier)
	f.Add("carriers: [null, 5, {name: x}]\n")
	f.Add("carriers:\n  - &c {name: a, <<: *c}\n")
	env := acmeEnv("")
	for k, v := range betaEnv {
		env[k] = v
	}
	f.Fuzz(func(t *testing.T, doc string) {
		cfgs, err := Parse([]byte(doc), getenv(env))
		if err != nil {
			return
		}
		for _, cfg := range cfgs {
			_, err := New(cfg, nil)
			require.NoError(t, err)
		}
	})
}
