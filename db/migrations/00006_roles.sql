-- +goose Up

-- Least privilege: two NOLOGIN roles that an admin grants to logins, e.g.
--   CREATE ROLE shop LOGIN PASSWORD '…';  GRANT waybill_monolith TO shop;
--   CREATE ROLE alice LOGIN;              GRANT waybill_ops TO alice;
-- (a login INHERITs its granted roles by default; with NOINHERIT, SET ROLE waybill_ops first).
--
-- waybill_monolith: INSERT orders, read orders and their history (order_events). Nothing else:
-- no UPDATE or DELETE, no webhook events, no River tables. The outbox trigger that enqueues the
-- dispatch job is SECURITY DEFINER, so the INSERT needs no privilege on River's tables.
-- waybill_ops: read every table and view in schema waybill, call waybill.redrive; write nothing.
--
-- Roles belong to the cluster, not the database: several Waybill databases (staging, tests) on
-- one server share them, so they are created only if missing, and a concurrent migration of
-- another database creating them first is fine. Creating them needs CREATEROLE; a migration login
-- without it works if an admin creates the two roles first. Grants are per database.
-- +goose StatementBegin
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['waybill_monolith', 'waybill_ops'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- another database's migration created it a moment ago
            END;
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA waybill TO waybill_monolith, waybill_ops;

GRANT INSERT, SELECT ON waybill.orders TO waybill_monolith;
GRANT SELECT ON waybill.order_events TO waybill_monolith;
-- The orders_validate trigger runs as the inserting role and looks the carrier up to name the
-- known ones in its error message (which says the same list anyway): carrier names only.
GRANT SELECT (name) ON waybill.carriers TO waybill_monolith;

GRANT SELECT ON ALL TABLES IN SCHEMA waybill TO waybill_ops;
-- Tables and views that later migrations (run by this same login) create are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA waybill GRANT SELECT ON TABLES TO waybill_ops;
GRANT EXECUTE ON FUNCTION waybill.redrive(bigint[], text) TO waybill_ops;

-- +goose Down

ALTER DEFAULT PRIVILEGES IN SCHEMA waybill REVOKE SELECT ON TABLES FROM waybill_ops;
REVOKE ALL ON ALL TABLES IN SCHEMA waybill FROM waybill_monolith, waybill_ops;
REVOKE ALL ON FUNCTION waybill.redrive(bigint[], text) FROM waybill_ops;
REVOKE ALL ON SCHEMA waybill FROM waybill_monolith, waybill_ops;

-- Drop the roles only when nothing else uses them: no privileges left in any database of the
-- cluster (pg_shdepend is shared) and no login granted them, since DROP ROLE would silently take
-- that grant away. Otherwise they stay, unused by this database.
-- +goose StatementBegin
DO $$
DECLARE
    r pg_catalog.pg_roles;
BEGIN
    FOR r IN SELECT * FROM pg_catalog.pg_roles WHERE rolname IN ('waybill_monolith', 'waybill_ops') LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_shdepend
                       WHERE refclassid = 'pg_catalog.pg_authid'::regclass AND refobjid = r.oid)
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members WHERE roleid = r.oid) THEN
            BEGIN
                EXECUTE format('DROP ROLE %I', r.rolname);
            EXCEPTION WHEN dependent_objects_still_exist THEN
                NULL; -- another database granted it a moment ago
            END;
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd
