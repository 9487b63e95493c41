-- Read by sqlc only, before db/migrations: what exists before our goose SQL runs. The schema is
-- created by internal/migrate, River's tables by rivermigrate (goose migration 1). Only the River
-- columns our queries use are declared; River's migrations are the truth.
CREATE SCHEMA waybill;

CREATE TYPE waybill.river_job_state AS ENUM (
    'available', 'cancelled', 'completed', 'discarded', 'pending', 'retryable', 'running', 'scheduled'
);

CREATE TABLE waybill.river_job (
    id           bigserial PRIMARY KEY,
    state        waybill.river_job_state NOT NULL DEFAULT 'available',
    attempt      smallint NOT NULL DEFAULT 0,
    max_attempts smallint NOT NULL,
    attempted_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    finalized_at timestamptz,
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    priority     smallint NOT NULL DEFAULT 1,
    args         jsonb NOT NULL,
    attempted_by text[],
    errors       jsonb[],
    kind         text NOT NULL,
    metadata     jsonb NOT NULL DEFAULT '{}',
    queue        text NOT NULL DEFAULT 'default',
    tags         varchar(255)[] NOT NULL DEFAULT '{}'
);
