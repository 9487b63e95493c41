// Command grafana-dashboard-check validates Grafana dashboard JSON against Grafana's own schema
// as the Grafana Foundation SDK generates it: every field known and of its type (panel options
// and Prometheus queries included, through the SDK's panel and query plugins), and every
// constraint met. It is a module of its own so the service does not depend on the SDK.
//
//	go run . ../../docs/ops/grafana-dashboard.json
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: grafana-dashboard-check DASHBOARD.json...")
		os.Exit(2)
	}
	plugins.RegisterDefaultPlugins()
	bad := false
	for _, path := range os.Args[1:] {
		n, err := check(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			bad = true
			continue
		}
		fmt.Printf("grafana-dashboard-check: %s matches Grafana's dashboard schema (%d panels)\n", path, n)
	}
	if bad {
		os.Exit(1)
	}
}

// orNil turns the SDK's empty error list (a non-nil error holding no error) into nil.
func orNil(err error) error {
	var errs cog.BuildErrors
	if errors.As(err, &errs) && len(errs) == 0 {
		return nil
	}
	return err
}

func check(path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var d dashboard.Dashboard
	if err := orNil(d.UnmarshalJSONStrict(raw)); err != nil {
		return 0, fmt.Errorf("does not match Grafana's dashboard schema: %w", err)
	}
	if err := orNil(d.Validate()); err != nil {
		return 0, fmt.Errorf("breaks a constraint of Grafana's dashboard schema: %w", err)
	}
	// The SDK's strict unmarshalling checks each panel but does not keep it, so its constraints
	// are checked here, panel by panel.
	var raws struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &raws); err != nil {
		return 0, err
	}
	n := 0
	for i, p := range raws.Panels {
		var kind struct{ Type string }
		if err := json.Unmarshal(p, &kind); err != nil {
			return 0, fmt.Errorf("panels[%d]: %w", i, err)
		}
		var panel interface {
			UnmarshalJSONStrict([]byte) error
			Validate() error
		} = &dashboard.Panel{}
		if kind.Type == "row" {
			panel = &dashboard.RowPanel{}
		} else {
			n++
		}
		if err := orNil(panel.UnmarshalJSONStrict(p)); err != nil {
			return 0, fmt.Errorf("panels[%d]: %w", i, err)
		}
		if err := orNil(panel.Validate()); err != nil {
			return 0, fmt.Errorf("panels[%d] breaks a constraint of Grafana's panel schema: %w", i, err)
		}
	}
	return n, nil
}
