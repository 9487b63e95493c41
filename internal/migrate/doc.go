// Package migrate applies Waybill's schema: River's tables and Waybill's own, all in the Postgres
// schema "waybill", under one goose version table.
package migrate
