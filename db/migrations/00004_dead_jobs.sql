-- +goose Up

-- The dead table: one row each time a River job dies, written by a trigger on waybill.river_job
-- in the same transaction as the state change that kills the job, so no failure can go
-- unrecorded. A job dies when it is discarded (attempts exhausted, or rescued while stuck on its
-- last attempt) or cancelled (its worker returned river.JobCancel, e.g. dispatch when the carrier
-- refuses an order for good; or an operator pressed cancel in River UI). A redriven job that dies
-- again gets a new row, so job_id is not unique; at most one row per job is open (not redriven).
--
-- Retention: River's job cleaner deletes discarded and cancelled jobs after
-- DiscardedJobRetentionPeriod (default 7 days) and CancelledJobRetentionPeriod (default 24 hours).
-- This table keeps its own copy of everything it needs (args, errors, and the rest of River's row
-- in `job`), and waybill.redrive re-inserts a job that the cleaner already removed, so River's
-- retention never loses a dead letter. Still, set both periods to 30 days (720h) in river.Config:
-- River UI can show, and retry, only jobs that still exist, and a dead job cancelled on a Friday
-- night must still be there on Monday. Completed jobs can go quickly (CompletedJobRetentionPeriod,
-- WAYBILL_COMPLETED_JOB_RETENTION). Rows here are never deleted by Waybill: they are the history of
-- every failure, small, and the open ones are the work list.
CREATE TABLE waybill.dead_jobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id       bigint NOT NULL,
    kind         text NOT NULL,
    queue        text NOT NULL,
    -- River's final state: discarded (attempts exhausted) or cancelled (given up on purpose).
    state        text NOT NULL CONSTRAINT dead_jobs_state_check CHECK (state IN ('discarded', 'cancelled')),
    args         jsonb NOT NULL,
    -- Every attempt's error as River recorded it: [{"at", "attempt", "error", "trace"}, …].
    errors       jsonb NOT NULL DEFAULT '[]',
    attempts     integer NOT NULL,
    -- One line: the last error, or who cancelled the job.
    reason       text NOT NULL,
    -- From args where the job has them (dispatch and notification jobs do). No foreign key: this
    -- table is a log and must accept any job.
    order_id     bigint,
    external_id  text,
    carrier      text,
    -- When the job died (River's finalized_at), whether discarded or cancelled.
    discarded_at timestamptz NOT NULL,
    redriven_at  timestamptz,
    -- Who redrove it: the name given to waybill.redrive (CLI: the OS user), else the database
    -- login (River UI: the service's login).
    redriven_by  text,
    -- How: river_ui (River UI's retry, or any Client.JobRetry), cli (`waybill dead redrive`),
    -- sql (waybill.redrive from psql).
    redriven_via text,
    -- The rest of River's row as it died, so a job River's cleaner deleted can be re-inserted
    -- exactly (same id, attempt, metadata). args and errors are stored above, not twice.
    job          jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dead_jobs_redriven_check CHECK ((redriven_at IS NULL) = (redriven_via IS NULL))
);

CREATE INDEX dead_jobs_job_id_idx ON waybill.dead_jobs (job_id);
CREATE UNIQUE INDEX dead_jobs_open_job_id_key ON waybill.dead_jobs (job_id) WHERE redriven_at IS NULL;
CREATE INDEX dead_jobs_order_id_idx ON waybill.dead_jobs (order_id) WHERE order_id IS NOT NULL;

-- A job's order id, when its args carry a usable one. Never raises: the dead-letter trigger runs
-- inside River's completion of a whole batch of jobs, and an error there would fail them all.
CREATE FUNCTION waybill.job_order_id(args jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(args->'order_id') = 'number' AND args->>'order_id' ~ '^[0-9]{1,18}$'
                THEN (args->>'order_id')::bigint END
$$;

-- Records a job's death. Only called for rows entering discarded or cancelled (see the trigger's
-- WHEN), so River's thousands of completions a second never enter plpgsql. SECURITY DEFINER (as
-- is the redrive trigger's function) so whichever login River or River UI runs as needs no
-- privilege on waybill.dead_jobs or orders.
-- +goose StatementBegin
CREATE FUNCTION waybill.dead_jobs_record() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, waybill AS $$
DECLARE
    last_error text;
    reason     text;
BEGIN
    last_error := NEW.errors[array_upper(NEW.errors, 1)]->>'error';
    last_error := nullif(btrim(regexp_replace(last_error, '\s+', ' ', 'g')), '');
    IF NEW.state = 'discarded' THEN
        reason := coalesce(last_error, 'discarded with no recorded error');
    ELSIF NEW.metadata ? 'cancel_attempted_at' THEN
        -- River's JobCancel marks the job this way: River UI's cancel button, or Client.JobCancel.
        reason := 'cancelled by an operator (River UI or Client.JobCancel)' || coalesce('; last error: ' || last_error, '');
    ELSE
        -- The worker returned river.JobCancel: a permanent failure.
        reason := 'cancelled: ' || coalesce(regexp_replace(last_error, '^JobCancelError: ', ''), 'no error recorded');
    END IF;

    -- At most one open row per job. One can only be left over if a job left discarded/cancelled
    -- without this migration's redrive trigger seeing it; close it rather than fail River.
    UPDATE waybill.dead_jobs
    SET redriven_at = now(), redriven_by = session_user, redriven_via = 'unrecorded'
    WHERE job_id = NEW.id AND redriven_at IS NULL;

    INSERT INTO waybill.dead_jobs (job_id, kind, queue, state, args, errors, attempts, reason,
                                   order_id, external_id, carrier, discarded_at, job)
    VALUES (NEW.id, NEW.kind, NEW.queue, NEW.state::text, NEW.args, coalesce(to_jsonb(NEW.errors), '[]'),
            NEW.attempt, left(reason, 1000),
            waybill.job_order_id(NEW.args), left(NEW.args->>'external_id', 200), left(NEW.args->>'carrier', 100),
            coalesce(NEW.finalized_at, now()), to_jsonb(NEW) - 'args' - 'errors');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER river_job_dead AFTER UPDATE OF state ON waybill.river_job
    FOR EACH ROW
    WHEN (NEW.state IN ('discarded', 'cancelled') AND OLD.state NOT IN ('discarded', 'cancelled'))
    EXECUTE FUNCTION waybill.dead_jobs_record();

-- Marks a job's open dead row redriven, and takes a redriven dispatch job's order out of
-- `rejected`: dispatch only moves an order from pending to dispatched, so a rejected order would
-- stay rejected even after the carrier accepted it on the redrive. Redriving a refused order
-- means "try again" (someone fixed the address, or the carrier's rule changed): the order is
-- pending again until the carrier answers. Who and how come from transaction-local settings that
-- waybill.redrive sets; without them the redrive came from River UI (or another Client.JobRetry).
-- +goose StatementBegin
CREATE FUNCTION waybill.dead_job_redriven(dead_job_id bigint, job_kind text, job_args jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF job_kind = 'dispatch_order' THEN
        UPDATE waybill.orders
        SET status = 'pending', status_reason = NULL, status_at = now(), updated_at = now()
        WHERE id = waybill.job_order_id(job_args) AND status = 'rejected';
    END IF;
    UPDATE waybill.dead_jobs d
    SET redriven_at  = now(),
        redriven_by  = coalesce(nullif(current_setting('waybill.redrive_by', true), ''), session_user),
        redriven_via = coalesce(nullif(current_setting('waybill.redrive_via', true), ''), 'river_ui')
    WHERE d.job_id = dead_job_id AND d.redriven_at IS NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION waybill.dead_jobs_redriven() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, waybill AS $$
BEGIN
    PERFORM waybill.dead_job_redriven(NEW.id, NEW.kind, NEW.args);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER river_job_redriven AFTER UPDATE OF state ON waybill.river_job
    FOR EACH ROW
    WHEN (OLD.state IN ('discarded', 'cancelled') AND NEW.state NOT IN ('discarded', 'cancelled'))
    EXECUTE FUNCTION waybill.dead_jobs_redriven();

-- Redrive for ops in psql: SELECT * FROM waybill.redrive(ARRAY[123, 456]);
-- Puts each dead job back to available exactly as River's JobRetry does (one more attempt if it
-- had used them all, finalized_at cleared, a past cancel request forgotten, scheduled now; the
-- attempt count is kept, so dispatch looks for a task an earlier attempt may have created before
-- creating one). A job River's cleaner already deleted is re-inserted from its dead row, same id.
-- The dead row is marked by the trigger above; the order of a rejected dispatch job goes back to
-- pending. One row per distinct id, with outcome:
--   redriven    the job is available again
--   reenqueued  the job was gone from River and was re-inserted, available
--   not_dead    the job exists but is not discarded or cancelled (detail: its state)
--   conflict    another active job has the same unique key (detail: the error)
--   unknown     no such job and no open dead letter
-- waybill.redrive_via (transaction-local setting) names the caller: `waybill dead redrive` sets
-- cli; psql gets sql. SECURITY DEFINER so waybill_ops needs no privilege on River's tables;
-- EXECUTE is revoked from PUBLIC below and granted to waybill_ops in 00006_roles.sql.
-- +goose StatementBegin
CREATE FUNCTION waybill.redrive(job_ids bigint[], by text DEFAULT current_user)
RETURNS TABLE (job_id bigint, kind text, order_id bigint, external_id text, outcome text, detail text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, waybill AS $$
#variable_conflict use_column
DECLARE
    prev_via text := current_setting('waybill.redrive_via', true);
    prev_by  text := current_setting('waybill.redrive_by', true);
    jid      bigint;
    st       waybill.river_job_state;
    d        waybill.dead_jobs;
BEGIN
    IF by IS NULL OR btrim(by) = '' THEN
        RAISE EXCEPTION 'waybill.redrive: say who is redriving (by)' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('waybill.redrive_via', coalesce(nullif(prev_via, ''), 'sql'), true);
    PERFORM set_config('waybill.redrive_by', by, true);

    FOR jid IN SELECT DISTINCT u FROM unnest(job_ids) u WHERE u IS NOT NULL ORDER BY u LOOP
        job_id := jid; detail := NULL;
        SELECT j.state, j.kind, waybill.job_order_id(j.args), j.args->>'external_id'
        INTO st, kind, order_id, external_id
        FROM waybill.river_job j WHERE j.id = jid FOR UPDATE;
        SELECT * INTO d FROM waybill.dead_jobs dj WHERE dj.job_id = jid AND dj.redriven_at IS NULL;
        IF FOUND THEN
            kind := d.kind; order_id := d.order_id; external_id := d.external_id;
        END IF;
        BEGIN
            IF st IS NOT NULL THEN
                IF st IN ('discarded', 'cancelled') THEN
                    -- River's JobRetry (riverdriver/riverpgxv5 river_job.sql), for a finalized job.
                    UPDATE waybill.river_job j
                    SET state        = 'available',
                        max_attempts = CASE WHEN j.attempt = j.max_attempts THEN j.max_attempts + 1 ELSE j.max_attempts END,
                        finalized_at = NULL,
                        metadata     = j.metadata - 'cancel_attempted_at',
                        scheduled_at = now()
                    WHERE j.id = jid;
                    outcome := 'redriven';
                ELSE
                    outcome := 'not_dead'; detail := st::text;
                END IF;
            ELSIF d.id IS NOT NULL THEN
                INSERT INTO waybill.river_job
                SELECT r.*
                FROM jsonb_populate_record(NULL::waybill.river_job, d.job || jsonb_build_object(
                         'args', d.args, 'errors', d.errors, 'state', 'available', 'finalized_at', NULL,
                         'scheduled_at', now(), 'metadata', coalesce(d.job->'metadata', '{}') - 'cancel_attempted_at',
                         'max_attempts', CASE WHEN d.attempts >= (d.job->>'max_attempts')::int
                                              THEN (d.job->>'max_attempts')::int + 1
                                              ELSE (d.job->>'max_attempts')::int END)) r;
                PERFORM waybill.dead_job_redriven(jid, d.kind, d.args);
                outcome := 'reenqueued';
            ELSE
                outcome := 'unknown';
            END IF;
        EXCEPTION WHEN unique_violation THEN
            outcome := 'conflict'; detail := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;

    PERFORM set_config('waybill.redrive_via', coalesce(prev_via, ''), true);
    PERFORM set_config('waybill.redrive_by', coalesce(prev_by, ''), true);
END
$$;
-- +goose StatementEnd

REVOKE EXECUTE ON FUNCTION waybill.redrive(bigint[], text) FROM PUBLIC;
-- Only the triggers and waybill.redrive (all running as the owner) call it.
REVOKE EXECUTE ON FUNCTION waybill.dead_job_redriven(bigint, text, jsonb) FROM PUBLIC;

-- What is dead, why, since when, and for which orders; newest first.
CREATE VIEW waybill.dead_letters_open AS
SELECT d.id, d.job_id, d.kind, d.queue, d.state, d.order_id, d.external_id, d.carrier,
       o.status AS order_status, d.attempts, d.reason, d.discarded_at,
       (now() - d.discarded_at)::interval AS dead_for
FROM waybill.dead_jobs d
LEFT JOIN waybill.orders o ON o.id = d.order_id
WHERE d.redriven_at IS NULL
ORDER BY d.discarded_at DESC, d.id DESC;

CREATE VIEW waybill.dead_letters_by_kind AS
SELECT kind,
       count(*) AS open,
       min(discarded_at)::timestamptz AS oldest,
       max(discarded_at)::timestamptz AS newest,
       coalesce(array_agg(DISTINCT carrier) FILTER (WHERE carrier IS NOT NULL), '{}')::text[] AS carriers,
       coalesce((array_agg(external_id ORDER BY discarded_at DESC) FILTER (WHERE external_id IS NOT NULL))[1:5], '{}')::text[] AS sample_external_ids
FROM waybill.dead_jobs
WHERE redriven_at IS NULL
GROUP BY kind
ORDER BY count(*) DESC, kind;

-- Jobs whose args name no carrier (alarms, for instance) are the row with carrier NULL.
CREATE VIEW waybill.dead_letters_by_carrier AS
SELECT carrier,
       count(*) AS open,
       min(discarded_at)::timestamptz AS oldest,
       max(discarded_at)::timestamptz AS newest,
       array_agg(DISTINCT kind)::text[] AS kinds,
       coalesce((array_agg(external_id ORDER BY discarded_at DESC) FILTER (WHERE external_id IS NOT NULL))[1:5], '{}')::text[] AS sample_external_ids
FROM waybill.dead_jobs
WHERE redriven_at IS NULL
GROUP BY carrier
ORDER BY count(*) DESC, carrier;

-- +goose Down
DROP VIEW waybill.dead_letters_by_carrier;
DROP VIEW waybill.dead_letters_by_kind;
DROP VIEW waybill.dead_letters_open;
DROP FUNCTION waybill.redrive(bigint[], text);
DROP TRIGGER river_job_redriven ON waybill.river_job;
DROP FUNCTION waybill.dead_jobs_redriven();
DROP FUNCTION waybill.dead_job_redriven(bigint, text, jsonb);
DROP TRIGGER river_job_dead ON waybill.river_job;
DROP FUNCTION waybill.dead_jobs_record();
DROP FUNCTION waybill.job_order_id(jsonb);
DROP TABLE waybill.dead_jobs;
