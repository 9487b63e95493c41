package generic

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// checkKeys walks a YAML node against the Go type it will be decoded into and reports every
// key the type does not have and every scalar that does not fit its field, naming the field by
// its dotted path. yaml.v3's own strict mode names neither the carrier nor the field.
func checkKeys(node *yaml.Node, t reflect.Type, path string, report func(field, msg string)) {
	node = resolveAlias(node)
	if node == nil || (node.Kind == yaml.ScalarNode && node.Tag == "!!null") {
		return // an absent value: required fields are checked after decoding
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	field := path
	if field == "" {
		field = "(entry)"
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			report(field, fmt.Sprintf("must be a mapping of fields (line %d)", node.Line))
			return
		}
		known := yamlFields(t)
		forPairs(node, func(key, value *yaml.Node) {
			if key.Value == "<<" { // a merge key: its mappings hold fields of this type
				checkMerge(value, t, path, report)
				return
			}
			ft, ok := known[key.Value]
			if !ok {
				names := make([]string, 0, len(known))
				for name := range known {
					names = append(names, name)
				}
				slices.Sort(names)
				report(joinPath(path, key.Value), fmt.Sprintf("unknown field (line %d); known here: %s", key.Line, strings.Join(names, ", ")))
				return
			}
			checkKeys(value, ft, joinPath(path, key.Value), report)
		})
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			report(field, fmt.Sprintf("must be a mapping (line %d)", node.Line))
			return
		}
		forPairs(node, func(key, value *yaml.Node) {
			if key.Kind != yaml.ScalarNode {
				report(field, fmt.Sprintf("keys must be plain words (line %d)", key.Line))
				return
			}
			checkKeys(value, t.Elem(), joinPath(path, key.Value), report)
		})
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			report(field, fmt.Sprintf("must be a list (line %d)", node.Line))
			return
		}
		for i, item := range node.Content {
			checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), report)
		}
	default:
		if node.Kind != yaml.ScalarNode {
			report(field, fmt.Sprintf("must be %s, not a mapping or list (line %d)", scalarKind(t), node.Line))
			return
		}
		if err := node.Decode(reflect.New(t).Interface()); err != nil {
			report(field, fmt.Sprintf("%q is not %s (line %d)", node.Value, scalarKind(t), node.Line))
		}
	}
}

// checkMerge checks the mapping (or list of mappings) a merge key brings in.
func checkMerge(value *yaml.Node, t reflect.Type, path string, report func(field, msg string)) {
	value = resolveAlias(value)
	if value.Kind == yaml.SequenceNode {
		for _, m := range value.Content {
			checkKeys(m, t, path, report)
		}
		return
	}
	checkKeys(value, t, path, report)
}

func scalarKind(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration such as 10s or 1m30s"
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		return "a number"
	case t.Kind() == reflect.Int:
		return "a whole number"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.String:
		return "text"
	}
	return t.String()
}

// yamlFields maps a struct's YAML keys to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

func forPairs(m *yaml.Node, fn func(key, value *yaml.Node)) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		fn(resolveAlias(m.Content[i]), m.Content[i+1])
	}
}

// mappingValue is the value of key in mapping node m, nil when m is not a mapping or has no
// such key.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return resolveAlias(m.Content[i+1])
		}
	}
	return nil
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
