// Package httpapi is Waybill's HTTP surface: order intake for producers that cannot write SQL,
// health and readiness, metrics, carrier webhooks and River UI, all on one mux.
package httpapi
