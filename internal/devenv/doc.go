// Package devenv gives `waybill dev` a Postgres with nothing to set up: the one DATABASE_URL
// names, a server already answering on localhost, or a private cluster it starts from the
// machine's PostgreSQL binaries. It also writes the demo orders the dev command offers.
package devenv
