#!/usr/bin/env bash
# check-ops-assets.sh — `make check` for docs/ops: the Prometheus rules load and pass their unit
# tests (promtool, from Debian's prometheus package, installed on first use), and the Grafana
# dashboard matches Grafana's dashboard schema (scripts/grafana-dashboard-check, a module of its
# own that uses the Grafana Foundation SDK). That every metric they query exists is tested in Go
# against the real binary's /metrics (cmd/waybill, TestOpsAssetsQueryRealMetrics).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
  echo "ops-check: installing promtool (Debian package prometheus), once"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool check rules docs/ops/prometheus-rules.yml
promtool test rules docs/ops/prometheus-rules.test.yml

(cd scripts/grafana-dashboard-check && GOFLAGS= GOWORK=off go run . ../../docs/ops/grafana-dashboard.json)
