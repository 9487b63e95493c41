-- The service's own role (issue 11): `waybill serve` needs rows, not DDL. Only `waybill migrate`
-- (the migration login, which owns the tables) changes the schema; the service runs as a login
-- granted waybill_service:
--   CREATE ROLE waybill_app LOGIN PASSWORD '…';  GRANT waybill_service TO waybill_app;
-- DML on every table of schema waybill (Waybill's and River's), sequences, and the functions
-- the service calls. Not: CREATE, ALTER, DROP, TRUNCATE, REFERENCES, TRIGGER, ownership.
-- River's daily REINDEX of its job indexes needs ownership: under this role serve turns it off
-- and says so; ops run it as the owner (RUNBOOK, Retention).

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'waybill_service') THEN
        BEGIN
            CREATE ROLE waybill_service NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- another database's migration created it a moment ago
        END;
    END IF;
END
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA waybill TO waybill_service;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA waybill TO waybill_service;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA waybill TO waybill_service;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA waybill TO waybill_service;
-- Tables, sequences and functions that later migrations (run by this same login) create.
ALTER DEFAULT PRIVILEGES IN SCHEMA waybill GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO waybill_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA waybill GRANT USAGE, SELECT ON SEQUENCES TO waybill_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA waybill GRANT EXECUTE ON FUNCTIONS TO waybill_service;

-- +goose Down
ALTER DEFAULT PRIVILEGES IN SCHEMA waybill REVOKE EXECUTE ON FUNCTIONS FROM waybill_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA waybill REVOKE USAGE, SELECT ON SEQUENCES FROM waybill_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA waybill REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM waybill_service;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA waybill FROM waybill_service;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA waybill FROM waybill_service;
REVOKE ALL ON ALL TABLES IN SCHEMA waybill FROM waybill_service;
REVOKE ALL ON SCHEMA waybill FROM waybill_service;
