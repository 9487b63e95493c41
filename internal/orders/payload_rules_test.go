package orders_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/waybill/waybill/internal/dbtest"
)

// The payload's rules live twice: waybill.order_payload_problems (SQL, enforced at INSERT) and
// db/order-payload.schema.json (the documentation producers validate against). These tests run
// one corpus, and fuzzed payloads, through both and require the same verdict, so neither can
// drift from the other unnoticed. (orders.Payload, the Go side, only reads what SQL admitted.)

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

func payloadSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		path := filepath.Join(filepath.Dir(file), "..", "..", "db", "order-payload.schema.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			schemaErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		if schemaErr = c.AddResource("order-payload.schema.json", doc); schemaErr != nil {
			return
		}
		schema, schemaErr = c.Compile("order-payload.schema.json")
	})
	require.NoError(t, schemaErr)
	return schema
}

// verdicts says whether SQL and the schema each accept payload.
// It also checks the INSERT's fast path: waybill.order_payload_ok may send a good payload to
// the full check, but must never pass one the full check refuses.
func verdicts(t testing.TB, pool *pgxpool.Pool, payload string) (sqlOK, schemaOK bool, problems []string) {
	t.Helper()
	var fastOK bool
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT waybill.order_payload_problems($1::jsonb), waybill.order_payload_ok($1::jsonb)`, payload).Scan(&problems, &fastOK))
	if fastOK && len(problems) > 0 {
		t.Fatalf("the fast path passes a payload with problems %v: %s", problems, payload)
	}
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(payload))
	require.NoError(t, err)
	return len(problems) == 0, payloadSchema(t).Validate(doc) == nil, problems
}

// beyondSchema reports payloads whose verdict JSON Schema cannot express, so only SQL decides:
// a window whose after is not earlier than its before, and a quantity written with a fraction
// or exponent (1.0 is an integer to JSON Schema, but not an integer the Go side can read).
var fractionalQuantity = regexp.MustCompile(`"quantity"\s*:\s*-?[0-9]+(\.[0-9]*|[eE])`)

func beyondSchema(payload string, problems []string) bool {
	for _, p := range problems {
		if p == "payload.window: after must be earlier than before" {
			return true
		}
	}
	return fractionalQuantity.MatchString(payload)
}

const goodPayload = `{"recipient":{"name":"Ada Lovelace","phone":"+14155550100","email":"ada@example.com"},
 "address":{"line1":"1 Market St","line2":"Apt 4","city":"San Francisco","region":"CA","postal_code":"94105","country":"US"},
 "notes":"ring twice","window":{"after":"2026-12-01T10:00:00Z","before":"2026-12-01T12:00:00+01:00"},
 "items":[{"sku":"SKU-1","quantity":2}]}`

var payloadCorpus = []string{
	goodPayload,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"}}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US","line2":null,"region":null,"postal_code":null},"notes":null,"window":null,"items":null}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"window":{"after":null,"before":"2026-01-01T00:00:00.123Z"}}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"items":[]}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"extra":"kept"}`,
	// bad
	`[]`, `"text"`, `null`, `{}`,
	`{"recipient":{"name":"","phone":"1"},"address":{"line1":"x","city":"y","country":"US"}}`,
	`{"recipient":{"name":"   ","phone":"1"},"address":{"line1":"x","city":"y","country":"US"}}`,
	`{"recipient":{"name":"A"},"address":{"line1":"x","city":"y","country":"US"}}`,
	`{"recipient":{"name":"A","phone":1},"address":{"line1":"x","city":"y","country":"US"}}`,
	`{"recipient":{"name":"A","phone":"1","email":"nope"},"address":{"line1":"x","city":"y","country":"US"}}`,
	`{"recipient":{"name":"A","phone":"1","email":null},"address":{"line1":"x","city":"y","country":"US"}}`,
	`{"recipient":"A","address":{"line1":"x","city":"y","country":"US"}}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y"}}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US","line2":3}}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"notes":7}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"notes":"` + strings.Repeat("n", 10001) + `"}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"window":"soon"}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"window":{"after":"tomorrow"}}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"window":{"after":"2026-01-02T00:00:00Z","before":"2026-01-01T00:00:00Z"}}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"items":{}}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"items":[{"sku":"a","quantity":0}]}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"items":[{"sku":"a","quantity":1.5}]}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"items":[{"sku":"a","quantity":1000000000}]}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"items":[{"sku":"","quantity":1}]}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"items":[{"quantity":1}]}`,
	`{"recipient":{"name":"A","phone":"1"},"address":{"line1":"x","city":"y","country":"US"},"items":["a"]}`,
}

func TestPayloadRulesAgree(t *testing.T) {
	t.Parallel()
	pool, _ := dbtest.NewPool(t)
	for _, p := range payloadCorpus {
		sqlOK, schemaOK, problems := verdicts(t, pool, p)
		if beyondSchema(p, problems) {
			require.False(t, sqlOK, "SQL alone refuses %s", p)
			continue
		}
		require.Equal(t, sqlOK, schemaOK, "SQL %v (%v), JSON Schema %v, for %s", sqlOK, problems, schemaOK, p)
	}
	sqlOK, _, _ := verdicts(t, pool, goodPayload)
	require.True(t, sqlOK)
	var fastOK bool
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT waybill.order_payload_ok($1::jsonb)`, goodPayload).Scan(&fastOK))
	require.True(t, fastOK, "a typical good order takes the fast path")
}

var (
	fuzzPoolOnce sync.Once
	fuzzPool     *pgxpool.Pool
)

func FuzzPayloadRulesAgree(f *testing.F) {
	for _, p := range payloadCorpus {
		f.Add(p)
	}
	fuzzPoolOnce.Do(func() { fuzzPool, _ = dbtest.NewPool(f) })
	f.Fuzz(func(t *testing.T, payload string) {
		if !json.Valid([]byte(payload)) || !utf8.ValidString(payload) || strings.ContainsRune(payload, 0) || strings.Contains(payload, `\u0000`) {
			return // Postgres's jsonb refuses these before any rule runs
		}
		var parsed bool
		if fuzzPool.QueryRow(context.Background(), `SELECT $1::jsonb IS NOT NULL`, payload).Scan(&parsed) != nil {
			return // JSON that jsonb refuses (a number out of numeric's range): no row holds it
		}
		sqlOK, schemaOK, problems := verdicts(t, fuzzPool, payload)
		if beyondSchema(payload, problems) {
			return
		}
		if sqlOK != schemaOK {
			t.Fatalf("SQL %v (%v), JSON Schema %v, for %s", sqlOK, problems, schemaOK, payload)
		}
	})
}
