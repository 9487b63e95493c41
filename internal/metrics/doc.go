// Package metrics is what Waybill tells Prometheus: counters the other packages increment, and
// gauges read from Postgres on each scrape (jobs, orders, dead letters). Ready is what /readyz
// (internal/httpapi) asks.
package metrics
