package generic

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePath(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"id", "data.id", "data.0.id", "0", "a-b.c_d.ünï", "$.x"} {
		p, err := ParsePath(ok)
		require.NoError(t, err, ok)
		require.Equal(t, ok, p.String())
		require.False(t, p.IsZero())
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a..b", "a. b", " a"} {
		_, err := ParsePath(bad)
		require.Error(t, err, bad)
	}
	require.True(t, Path{}.IsZero())
}

func TestPathLookup(t *testing.T) {
	t.Parallel()
	doc, err := decodeJSON([]byte(`{
		"id": "evt_1",
		"n": 12345678901234567890,
		"ms": 1740830400123,
		"ok": false,
		"none": null,
		"data": {"items": [{"sku": "A"}, {"sku": "B", "tags": ["x"]}], "0": "key zero", "": "empty key"},
		"list": [[1, 2], [3]]
	}`))
	require.NoError(t, err)

	tests := []struct {
		path string
		text string
		ok   bool // Text found a value
	}{
		{"id", "evt_1", true},
		{"n", "12345678901234567890", true}, // as written, no float rounding
		{"ms", "1740830400123", true},
		{"ok", "false", true},
		{"none", "", false},
		{"data", "", false}, // an object is not a value
		{"data.items.0.sku", "A", true},
		{"data.items.1.sku", "B", true},
		{"data.items.1.tags.0", "x", true},
		{"data.items.2.sku", "", false},
		{"data.items.-1.sku", "", false},
		{"data.items.+1.sku", "", false},
		{"data.items.01.sku", "", false},
		{"data.items.sku", "", false},
		{"data.0", "key zero", true}, // a number is a key on an object
		{"list.0.1", "2", true},
		{"list.1.0", "3", true},
		{"id.x", "", false}, // a step into a scalar
		{"missing", "", false},
		{"data.items.99999999999999999999", "", false},
	}
	for _, tt := range tests {
		p, err := ParsePath(tt.path)
		require.NoError(t, err)
		text, ok := p.Text(doc)
		require.Equal(t, tt.ok, ok, tt.path)
		require.Equal(t, tt.text, text, tt.path)
	}

	p, _ := ParsePath("none")
	v, ok := p.Lookup(doc)
	require.True(t, ok, "null is there")
	require.Nil(t, v)
	require.True(t, p.HitsNull(doc))
	p, _ = ParsePath("none.deeper.still")
	require.True(t, p.HitsNull(doc))
	p, _ = ParsePath("missing.deeper")
	require.False(t, p.HitsNull(doc))
	p, _ = ParsePath("data.items")
	v, ok = p.Lookup(doc)
	require.True(t, ok)
	require.Len(t, v, 2)

	// A top-level array.
	arr, err := decodeJSON([]byte(`[{"id": "t1"}]`))
	require.NoError(t, err)
	p, _ = ParsePath("0.id")
	text, ok := p.Text(arr)
	require.True(t, ok)
	require.Equal(t, "t1", text)
}

// FuzzPath: any path over any JSON never panics, and a value found is reachable step by step.
func FuzzPath(f *testing.F) {
	f.Add(`{"data": {"items": [{"sku": "A"}]}}`, "data.items.0.sku")
	f.Add(`[[1], {"0": null}]`, "1.0")
	f.Add(`{"a": 1e999}`, "a")
	f.Add(`"x"`, "0")
	f.Add(`{"a": {"b": null}}`, "a.b.c")
	f.Fuzz(func(t *testing.T, body, path string) {
		doc, err := decodeJSON([]byte(body))
		if err != nil {
			return
		}
		p, err := ParsePath(path)
		if err != nil {
			require.True(t, hasBadStep(path), path)
			return
		}
		v, ok := p.Lookup(doc)
		text, isText := p.Text(doc)
		if !ok {
			require.False(t, isText)
			return
		}
		if isText {
			switch x := v.(type) {
			case string:
				require.Equal(t, x, text)
			case json.Number:
				require.Equal(t, x.String(), text)
			case bool:
				require.Contains(t, []string{"true", "false"}, text)
			default:
				t.Fatalf("text %q from %T", text, v)
			}
		}
		_ = p.HitsNull(doc)
	})
}

// hasBadStep: a step is empty or has spaces around it, the only paths ParsePath refuses.
func hasBadStep(path string) bool {
	for _, step := range strings.Split(path, ".") {
		if step == "" || strings.TrimSpace(step) != step {
			return true
		}
	}
	return false
}
