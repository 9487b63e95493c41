// Package db holds Waybill's SQL: goose migrations (also sqlc's schema) and sqlc queries.
package db
