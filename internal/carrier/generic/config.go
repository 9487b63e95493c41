package generic

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/waybill/waybill/internal/carrier"
)

// Config declares one carrier: how to create (and find) its tasks, how to read its webhooks and
// what its words mean. Its fields are the carriers file's, as written; secrets stay in the
// environment and are read by Parse and LoadFile, which also check and compile everything, so
// New only accepts a Config they returned.
type Config struct {
	// Name is the carrier's name in waybill.orders.carrier and POST /webhooks/{name}.
	Name string `yaml:"name"`
	// RateLimit is requests per second for the carrier's organisation; 0 means no limit.
	RateLimit float64 `yaml:"rate_limit"`
	// Limiter, when set (by serve: shared by every instance), holds RateLimit instead of a
	// limiter of this process's own.
	Limiter carrier.Limiter `yaml:"-"`
	// Timeout bounds each request; 0 means the caller's default (DefaultTimeout in New).
	Timeout time.Duration `yaml:"timeout"`
	// ErrorMessage is the path of the carrier's explanation in an error answer
	// ("error.message"), kept as the order's status_reason when it is rejected. Without it, or
	// when the answer has none there, the body itself is kept (shortened).
	ErrorMessage string           `yaml:"error_message"`
	CreateTask   CreateTaskConfig `yaml:"create_task"`
	FindTask     *FindTaskConfig  `yaml:"find_task"`
	// CreateBatch, when set, creates many tasks in one request (see CreateBatchConfig).
	CreateBatch *CreateBatchConfig `yaml:"create_batch"`
	Webhook     WebhookConfig      `yaml:"webhook"`
	Vocabulary  map[string]string  `yaml:"vocabulary"`

	// compiled is what Parse built: templates, paths, and the secrets read from the
	// environment (unexported, so printing a Config never shows them).
	compiled *compiledCarrier
}

// CreateTaskConfig is the request that creates a task.
type CreateTaskConfig struct {
	// URL is a template over the order (see package doc); ${VAR} and ${VAR:-default} are read
	// from the environment first.
	URL    string `yaml:"url"`
	Method string `yaml:"method"` // POST (default), PUT or PATCH
	// Headers are sent with every request to the carrier (find_task's too); values may hold
	// ${VAR}. Content-Type and Accept default to application/json.
	Headers map[string]string `yaml:"headers"`
	Auth    *AuthConfig       `yaml:"auth"`
	// IdempotencyHeader, when set, carries the order's external_id on every create, so a
	// carrier that honours idempotency keys never creates a second task for a retried order.
	IdempotencyHeader string `yaml:"idempotency_header"`
	// Body is a text/template that renders the order as the carrier's JSON request.
	Body     string         `yaml:"body"`
	Response ResponseConfig `yaml:"response"`
}

// AuthConfig is how requests authenticate: exactly one of ValueEnv, BearerEnv and Basic.
type AuthConfig struct {
	// Header carries the credential; default Authorization.
	Header string `yaml:"header"`
	// ValueEnv names the variable whose value is sent as the header's value, as it is.
	ValueEnv string `yaml:"value_env"`
	// BearerEnv names the variable holding a token sent as "Bearer <token>".
	BearerEnv string `yaml:"bearer_env"`
	// Basic sends HTTP Basic credentials.
	Basic *BasicAuthConfig `yaml:"basic"`
}

// BasicAuthConfig names the variables holding HTTP Basic credentials. Without PasswordEnv the
// password is empty (an API key as the user name, as Onfleet does).
type BasicAuthConfig struct {
	UsernameEnv string `yaml:"username_env"`
	PasswordEnv string `yaml:"password_env"`
}

// ResponseConfig says where the created task is in the carrier's answer.
type ResponseConfig struct {
	TaskID      string `yaml:"task_id"`      // path, required
	TrackingURL string `yaml:"tracking_url"` // path, optional
}

// FindTaskConfig is the request that finds a task created earlier for an order, by the
// external_id it was created with. Without it FindTask always answers "none", so a retry after
// a timeout may create a second task unless the carrier honours create_task.idempotency_header.
type FindTaskConfig struct {
	// URL is a template like create_task.url that knows only {{.ExternalID}}, percent-encoded.
	URL     string            `yaml:"url"`
	Method  string            `yaml:"method"`  // GET (default) or POST
	Headers map[string]string `yaml:"headers"` // added to create_task.headers
	// Body is a JSON template like create_task.body that knows only .ExternalID; only with POST.
	Body     string             `yaml:"body"`
	Response FindResponseConfig `yaml:"response"`
}

// FindResponseConfig says where the found task is in the answer. With List (the path of an
// array of matches, e.g. "data"), an empty array means none and TaskID and TrackingURL are
// paths within the first match; a 404 is then an error, since a search answers with a list.
// Without List the answer is the task itself, and a 404 means none.
type FindResponseConfig struct {
	List        string `yaml:"list"`
	TaskID      string `yaml:"task_id"`
	TrackingURL string `yaml:"tracking_url"`
}

// WebhookConfig says how to verify and read the carrier's webhooks. Every field but Signature,
// TimeFormat and Details is a path into the webhook's JSON body.
type WebhookConfig struct {
	Signature SignatureConfig `yaml:"signature"`
	// EventID is the carrier's id of the event, what a redelivery repeats. Without it, a
	// redelivery is recognised only when its bytes are the same.
	EventID string `yaml:"event_id"`
	// TaskID is the carrier's task, as create_task.response.task_id gave it. An event without
	// one is not about a task and is ignored.
	TaskID string `yaml:"task_id"`
	// ExternalID, when the carrier echoes the order's external_id, finds the order before
	// dispatch has stored the task id.
	ExternalID string `yaml:"external_id"`
	// Status is the carrier's word for what happened: a key of the vocabulary.
	Status string `yaml:"status"`
	// Time is when it happened, in TimeFormat: rfc3339 (default), unix (seconds) or unix_ms.
	Time       string `yaml:"time"`
	TimeFormat string `yaml:"time_format"`
	// Reason and TrackingURL are optional paths to the carrier's explanation and tracking link.
	Reason      string `yaml:"reason"`
	TrackingURL string `yaml:"tracking_url"`
	// Details are kept in the order's history: name → path of any JSON value.
	Details map[string]string `yaml:"details"`
}

// SignatureConfig is how the carrier signs a webhook: an HMAC of the raw body.
type SignatureConfig struct {
	// Scheme: hmac-sha256-hex, hmac-sha256-base64, hmac-sha512-hex or hmac-sha512-base64.
	Scheme string `yaml:"scheme"`
	// Header carries the signature, after Prefix (e.g. "sha256=") when set.
	Header string `yaml:"header"`
	Prefix string `yaml:"prefix"`
	// SecretEnv names the variable holding the secret: one, or two separated by a comma while
	// rotating. SecretEncoding says how to read it into key bytes: raw (default, the text's
	// bytes), hex or base64.
	SecretEnv      string `yaml:"secret_env"`
	SecretEncoding string `yaml:"secret_encoding"`
}

// nameFormat is waybill.carriers' CHECK constraint.
var nameFormat = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// reservedNames are carriers Waybill implements in code.
var reservedNames = []string{"onfleet"}

// LoadFile reads the carriers file at path (WAYBILL_CARRIERS_FILE), with secrets from the
// process environment. See Parse.
func LoadFile(path string) ([]Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("carriers file: %w", err)
	}
	cfgs, err := Parse(data, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("carriers file %s: %w", path, err)
	}
	return cfgs, nil
}

// Parse reads a carriers file: YAML with a top-level "carriers" list. Decoding is strict (an
// unknown key is an error) and every carrier is checked and compiled: its templates parse and
// render JSON for sample orders, its paths parse, its environment variables are set, its
// vocabulary means something. Every problem is reported, each naming the carrier and field.
func Parse(data []byte, getenv func(string) string) ([]Config, error) {
	// Decoding into an empty interface first lets yaml.v3 refuse what the walk below must not
	// meet: syntax errors, aliases that contain themselves, alias bombs.
	var plain any
	if err := yaml.Unmarshal(data, &plain); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty: declare carriers under a top-level \"carriers\" list")
	}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	root := resolveAlias(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("the file must be a mapping with a \"carriers\" list")
	}
	forPairs(root, func(key, _ *yaml.Node) {
		if key.Value != "carriers" {
			fail("%s: unknown field (line %d); the file holds only \"carriers\"", key.Value, key.Line)
		}
	})
	list := mappingValue(root, "carriers")
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		fail("carriers: declare at least one carrier as a list item")
	}
	if len(problems) > 0 {
		return nil, joinProblems(problems)
	}

	var cfgs []Config
	seen := map[string]bool{}
	for i, node := range list.Content {
		node = resolveAlias(node)
		label := fmt.Sprintf("carriers[%d]", i)
		if n := mappingValue(node, "name"); n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
			label = fmt.Sprintf("carrier %q", n.Value)
		}
		before := len(problems)
		checkKeys(node, reflect.TypeFor[Config](), "", func(field, msg string) { fail("%s: %s: %s", label, field, msg) })
		if len(problems) > before {
			continue // the shape is wrong; what follows would only repeat it
		}
		var cfg Config
		if err := node.Decode(&cfg); err != nil {
			fail("%s: %v", label, err)
			continue
		}
		c := &compiler{getenv: getenv, label: label}
		cfg.compiled = c.carrier(&cfg)
		if cfg.Name != "" && nameFormat.MatchString(cfg.Name) {
			if seen[cfg.Name] {
				c.fail("name", "declared twice")
			}
			seen[cfg.Name] = true
		}
		problems = append(problems, c.problems...)
		cfgs = append(cfgs, cfg)
	}
	if len(problems) > 0 {
		return nil, joinProblems(problems)
	}
	return cfgs, nil
}

func joinProblems(problems []string) error {
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = errors.New(p)
	}
	return errors.Join(errs...)
}

// envRef is ${VAR} or ${VAR:-default}.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// compiler checks one carrier's Config and builds what its Carrier and Source run on,
// collecting every problem.
type compiler struct {
	getenv   func(string) string
	label    string
	problems []string
}

func (c *compiler) fail(field, format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf("%s: %s: %s", c.label, field, fmt.Sprintf(format, args...)))
}

// expand replaces ${VAR} and ${VAR:-default} in s with the environment's values.
func (c *compiler) expand(field, s string) string {
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if v := c.getenv(m[1]); v != "" {
			return v
		}
		if m[2] != "" {
			return m[3]
		}
		c.fail(field, "environment variable %s is not set", m[1])
		return ""
	})
	if rest := envRef.ReplaceAllString(s, ""); strings.Contains(rest, "${") {
		c.fail(field, "malformed ${…}: write ${NAME} or ${NAME:-default}")
	}
	return out
}

// secret reads the variable a *_env field names.
func (c *compiler) secret(field, name string) string {
	if name == "" {
		c.fail(field, "required")
		return ""
	}
	if !envName.MatchString(name) {
		c.fail(field, "%q is not an environment variable name", name)
		return ""
	}
	v := c.getenv(name)
	if v == "" {
		c.fail(field, "environment variable %s is not set", name)
	}
	return v
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// path parses an optional path field.
func (c *compiler) path(field, s string) Path {
	if s == "" {
		return Path{}
	}
	p, err := ParsePath(s)
	if err != nil {
		c.fail(field, "%v", err)
	}
	return p
}

// requiredPath parses a path field that must be set.
func (c *compiler) requiredPath(field, s string) Path {
	if s == "" {
		c.fail(field, "required")
		return Path{}
	}
	return c.path(field, s)
}

func (c *compiler) carrier(cfg *Config) *compiledCarrier {
	switch {
	case cfg.Name == "":
		c.fail("name", "required")
	case !nameFormat.MatchString(cfg.Name):
		c.fail("name", "%q must match %s (lower case, as in waybill.carriers)", cfg.Name, nameFormat)
	case slices.Contains(reservedNames, cfg.Name):
		c.fail("name", "%q is built into Waybill; pick another name", cfg.Name)
	}
	if !(cfg.RateLimit >= 0) || math.IsInf(cfg.RateLimit, 0) {
		c.fail("rate_limit", "must be 0 (no limit) or a positive number of requests per second")
	}
	if cfg.Timeout < 0 {
		c.fail("timeout", "must not be negative")
	}
	cc := &compiledCarrier{
		errorMessage: c.path("error_message", cfg.ErrorMessage),
		create:       c.createTask(cfg.CreateTask),
	}
	if cfg.FindTask != nil {
		cc.find = c.findTask(*cfg.FindTask, cc.create.header)
	}
	if cfg.CreateBatch != nil {
		cc.batch = c.createBatch(*cfg.CreateBatch, cc.create.header)
	}
	cc.webhook = c.webhook(cfg.Webhook)
	cc.vocabulary = c.vocabulary(cfg.Vocabulary)
	return cc
}
