package db

import "embed"

// Migrations are the goose SQL migrations, applied by internal/migrate.
//
//go:embed migrations/*.sql
var Migrations embed.FS
