// Package dbtest gives each test its own migrated Postgres database, cloned from a template that
// is migrated once per schema version, so tests run in parallel against the real thing.
package dbtest
