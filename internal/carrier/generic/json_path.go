package generic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Path finds a value in decoded JSON: dot-separated steps from the document's root, each an
// object key or, on an array, a zero-based index. "data.id" is {"data":{"id":…}}, "items.0.sku"
// the first item's sku, "0.id" the id of the first element of a top-level array. A step is
// never empty and cannot contain a dot; a number is a key on an object ({"0":…}) and an index
// only on an array. There are no wildcards, filters or negative indexes.
//
// Why not gjson, which the rest of Waybill reads JSON with: gjson's syntax is a language
// (wildcards, queries, modifiers, escapes) in which nearly every string is a valid path, so a
// typo in WAYBILL_CARRIERS_FILE would silently find nothing at run time instead of failing
// `serve` at start with the path named; and a gjson path cannot say "key 0 on an object, index 0
// on an array" as this grammar does. Restricting gjson to this grammar would need this parser
// anyway, so the lookup stays beside it.
type Path struct {
	raw   string
	steps []string
}

// ParsePath checks s and returns its Path.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return Path{}, errors.New("empty path")
	}
	steps := strings.Split(s, ".")
	for i, step := range steps {
		if step == "" {
			return Path{}, fmt.Errorf("path %q: step %d is empty", s, i+1)
		}
		if strings.TrimSpace(step) != step {
			return Path{}, fmt.Errorf("path %q: step %q has surrounding spaces", s, step)
		}
	}
	return Path{raw: s, steps: steps}, nil
}

func (p Path) String() string { return p.raw }

// IsZero reports whether p is the zero Path: a field that was not configured.
func (p Path) IsZero() bool { return len(p.steps) == 0 }

// Lookup returns the value at p in doc, a value decoded by decodeJSON (objects as
// map[string]any, arrays as []any, numbers as json.Number). ok is false when a step is missing,
// an index is out of range or not a plain non-negative decimal, or a step meets a scalar.
func (p Path) Lookup(doc any) (v any, ok bool) {
	if p.IsZero() {
		return nil, false
	}
	v = doc
	for _, step := range p.steps {
		switch node := v.(type) {
		case map[string]any:
			if v, ok = node[step]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(step)
			// Atoi accepts "+1" and "-0": only plain digits are indexes.
			if err != nil || i < 0 || i >= len(node) || strconv.Itoa(i) != step {
				return nil, false
			}
			v = node[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// HitsNull reports whether p, followed through doc, meets a JSON null at or before its end:
// {"data": null} for "data.id". An answer that says "nothing" that way differs from one that
// lacks the key, which is not the shape the configuration describes.
func (p Path) HitsNull(doc any) bool {
	for i := 1; i <= len(p.steps); i++ {
		prefix := Path{raw: p.raw, steps: p.steps[:i]}
		v, ok := prefix.Lookup(doc)
		if !ok {
			return false
		}
		if v == nil {
			return true
		}
	}
	return false
}

// Text returns the value at p as text: a string as it is, a number as written, a boolean as
// true or false. ok is false when the value is missing, null, an object or an array.
func (p Path) Text(doc any) (string, bool) {
	v, ok := p.Lookup(doc)
	if !ok {
		return "", false
	}
	return scalarText(v)
}

func scalarText(v any) (string, bool) {
	switch s := v.(type) {
	case string:
		return s, true
	case json.Number:
		return s.String(), true
	case bool:
		return strconv.FormatBool(s), true
	}
	return "", false
}

// describe names a value's JSON type for messages.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// errNotJSON: the bytes are not exactly one JSON document.
var errNotJSON = errors.New("not valid JSON")

// decodeJSON decodes one JSON document keeping numbers as written (json.Number), so ids and
// millisecond times survive without float rounding.
func decodeJSON(b []byte) (any, error) {
	if !json.Valid(b) {
		return nil, errNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}
