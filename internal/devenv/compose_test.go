package devenv

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/waybill/waybill/internal/config"
)

// No Docker engine runs where the tests do, so the compose file is checked for what would break
// `docker compose up`: services without an image, dangling or unsatisfiable dependencies, and a
// Waybill environment that `serve` would refuse.
func TestDockerCompose(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)

	type service struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   yaml.Node         `yaml:"depends_on"`
		Healthcheck map[string]any    `yaml:"healthcheck"`
		NetworkMode string            `yaml:"network_mode"`
		Ports       []string          `yaml:"ports"`
	}
	var compose struct {
		Services map[string]service `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &compose))

	for _, name := range []string{"postgres", "mailpit", "sandbox", "migrate", "waybill"} {
		require.Contains(t, compose.Services, name)
	}
	for name, svc := range compose.Services {
		require.True(t, svc.Image != "" || svc.Build != nil, "service %s has neither image nor build", name)

		// depends_on is a list of names or a map of name → {condition}.
		deps := map[string]string{}
		switch svc.DependsOn.Kind {
		case 0:
		case yaml.SequenceNode:
			var names []string
			require.NoError(t, svc.DependsOn.Decode(&names))
			for _, d := range names {
				deps[d] = "service_started"
			}
		case yaml.MappingNode:
			var m map[string]struct{ Condition string }
			require.NoError(t, svc.DependsOn.Decode(&m))
			for d, c := range m {
				deps[d] = c.Condition
			}
		default:
			t.Fatalf("service %s: depends_on is neither a list nor a map", name)
		}
		for dep, cond := range deps {
			require.Contains(t, compose.Services, dep, "service %s depends on unknown service %s", name, dep)
			require.Contains(t, []string{"service_started", "service_healthy", "service_completed_successfully"}, cond)
			if cond == "service_healthy" {
				require.NotEmpty(t, compose.Services[dep].Healthcheck, "%s waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
	}

	waybill := compose.Services["waybill"]
	require.Equal(t, []string{"serve"}, waybill.Command)
	require.Equal(t, []string{"migrate", "up"}, compose.Services["migrate"].Command)
	require.Equal(t, waybill.Environment, compose.Services["migrate"].Environment)
	cfg, err := config.FromEnv(func(k string) string { return waybill.Environment[k] })
	require.NoError(t, err, "serve would refuse the waybill service's environment")
	// Tracking links are built by the sandbox from the address Waybill calls it at: Waybill shares
	// the sandbox's network namespace and calls it at localhost:8081, which the host's browser
	// opens through the sandbox's published port.
	require.Equal(t, "http://localhost:8081", cfg.OnfleetBaseURL)
	require.Equal(t, "service:sandbox", waybill.NetworkMode)
	require.Empty(t, waybill.Ports, "a service in another's network namespace publishes through it")
	require.Contains(t, compose.Services["sandbox"].Ports, "127.0.0.1:8081:8081")
	require.Contains(t, compose.Services["sandbox"].Ports, "127.0.0.1:8080:8080", "Waybill's port, published by the namespace it lives in")
	require.Zero(t, cfg.OnfleetRateLimit)
	for _, k := range []string{"WAYBILL_INTAKE_TOKEN", "WAYBILL_ADMIN_USER", "WAYBILL_ADMIN_PASSWORD", "ONFLEET_WEBHOOK_SECRET", "SMTP_URL", "MAIL_FROM", "LOGISTICS_EMAIL"} {
		require.NotEmpty(t, waybill.Environment[k], k)
	}

	// The sandbox signs its webhooks with the secret Waybill checks them with.
	sandbox := compose.Services["sandbox"].Command
	require.Equal(t, "sandbox", sandbox[0])
	i := slices.Index(sandbox, "--webhook-secret")
	require.Positive(t, i)
	require.Equal(t, waybill.Environment["ONFLEET_WEBHOOK_SECRET"], sandbox[i+1])
	require.Equal(t, []string{"--addr", ":8081"}, sandbox[1:3])
	require.Contains(t, sandbox, "http://localhost:8080/webhooks/onfleet")
}

// The build image follows the go directive, so a Go upgrade cannot leave the Dockerfile behind.
func TestDockerfileGoVersion(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	dockerfile, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	require.NotNil(t, m)
	require.Contains(t, string(dockerfile), "FROM golang:"+string(m[1])+" AS build")
	require.Contains(t, string(dockerfile), "./cmd/waybill")
}
