// Package daemon runs `waybill serve`: the HTTP API, River's workers and the dispatch completer
// over one Postgres pool, started and stopped in order.
package daemon
