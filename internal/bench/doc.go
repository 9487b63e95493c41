// Package bench is `waybill-bench`: it starts the real waybill binaries against a throwaway
// Postgres database, offers them load, measures reference workloads on the same Postgres in the
// same run, and writes the figures as a table, JSON and an SVG chart.
package bench
