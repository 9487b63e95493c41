-- +goose Up

-- One row per carrier request that creates tasks (a batch of one for POST /tasks), written
-- BEFORE the request goes out. It is how Waybill never creates a task twice: a job whose order
-- sits in an unfinished batch never sends again; the batch is settled first, by the carrier's
-- answer, by polling its async job, by its completion webhook, or by one metadata lookup of the
-- batch id, and only orders the carrier does not have are sent again.
CREATE TABLE waybill.dispatch_batches (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    carrier        text NOT NULL,
    -- sending:   recorded; the request is going out, or its answer was lost (timeout, 5xx, crash)
    -- submitted: the carrier accepted an async job (carrier_job_id) and is creating the tasks
    -- finished:  every order's outcome is known (results) and recorded on the orders
    state          text NOT NULL DEFAULT 'sending'
                       CONSTRAINT dispatch_batches_state_check CHECK (state IN ('sending', 'submitted', 'finished')),
    order_ids      bigint[] NOT NULL,
    external_ids   text[] NOT NULL,
    carrier_job_id text,
    -- Once finished, what came of it: {"created": n, "refused": n, "warnings": n, "not_created": n}.
    -- Each order's own outcome is on the order (carrier_ref, or rejected with status_reason);
    -- those not created went out again in a later batch.
    results        jsonb,
    -- How the outcome became known: answer (synchronous), poll, webhook, lookup (metadata), unsent.
    settled_by     text CONSTRAINT dispatch_batches_settled_by_check CHECK (settled_by IN ('answer', 'poll', 'webhook', 'lookup', 'unsent')),
    -- The last ambiguous failure (timeout, 5xx, a job that does not finish), for ops.
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    submitted_at   timestamptz,
    finished_at    timestamptz,
    -- When an instance last claimed the right to look this batch up at the carrier: one lookup
    -- per batch across the cluster.
    lookup_at      timestamptz
);

-- The unfinished batches: the few requests in flight. A job that ran before looks for its
-- order in their order_ids (a scan of a handful of rows); a GIN index over order_ids cost an
-- entry per order on every batch, for a lookup that only retries make.
CREATE INDEX dispatch_batches_unfinished_idx ON waybill.dispatch_batches (id) WHERE state <> 'finished';
CREATE INDEX dispatch_batches_carrier_job_id_idx ON waybill.dispatch_batches (carrier_job_id)
    WHERE carrier_job_id IS NOT NULL;
CREATE INDEX dispatch_batches_created_at_idx ON waybill.dispatch_batches (created_at);

-- One request budget per carrier organisation, shared by every `waybill serve` on this database:
-- Postgres is the coordinator. A token bucket with a burst of one (the carrier's window is not
-- documented, so requests are spaced evenly and never bunch up within one second).
CREATE TABLE waybill.carrier_rate_limits (
    carrier            text PRIMARY KEY,
    tokens             double precision NOT NULL DEFAULT 1,
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Set by a 429 (or X-RateLimit-Remaining: 0): nobody sends before then.
    blocked_until      timestamptz NOT NULL DEFAULT '-infinity',
    -- Set while dispatch waits for a token: polls and lookups (low priority) stand back.
    high_waiting_until timestamptz NOT NULL DEFAULT '-infinity'
);

-- Takes one request token for p_carrier at p_rate requests/s. Returns 0 when taken, else the
-- seconds to wait before asking again. Low-priority callers (polls, lookups) get no token while a
-- high-priority one (dispatch) is waiting. One row lock per request: 18 tiny updates a second
-- whatever the number of instances.
-- +goose StatementBegin
CREATE FUNCTION waybill.carrier_rate_take(p_carrier text, p_rate double precision, p_low boolean)
RETURNS double precision
LANGUAGE plpgsql
AS $$
DECLARE
    r      waybill.carrier_rate_limits%ROWTYPE;
    now_   timestamptz := clock_timestamp();
    v_tokens double precision;
    v_wait   double precision;
BEGIN
    SELECT * INTO r FROM waybill.carrier_rate_limits WHERE carrier = p_carrier FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO waybill.carrier_rate_limits (carrier, tokens, updated_at) VALUES (p_carrier, 0, now_)
        ON CONFLICT (carrier) DO NOTHING;
        IF FOUND THEN
            RETURN 0;
        END IF;
        SELECT * INTO r FROM waybill.carrier_rate_limits WHERE carrier = p_carrier FOR UPDATE;
    END IF;
    IF r.blocked_until > now_ THEN
        RETURN extract(epoch FROM r.blocked_until - now_);
    END IF;
    IF p_low AND r.high_waiting_until > now_ THEN
        RETURN greatest(extract(epoch FROM r.high_waiting_until - now_), 0.01);
    END IF;
    v_tokens := least(1, r.tokens + extract(epoch FROM now_ - greatest(r.updated_at, r.blocked_until)) * p_rate);
    IF v_tokens >= 1 THEN
        UPDATE waybill.carrier_rate_limits SET tokens = v_tokens - 1, updated_at = now_ WHERE carrier = p_carrier;
        RETURN 0;
    END IF;
    v_wait := (1 - v_tokens) / p_rate;
    IF NOT p_low THEN
        UPDATE waybill.carrier_rate_limits
        SET high_waiting_until = greatest(high_waiting_until, now_ + make_interval(secs => v_wait + 0.05))
        WHERE carrier = p_carrier;
    END IF;
    RETURN v_wait;
END
$$;
-- +goose StatementEnd

-- The carrier said stop (429, code 2300, or no requests remaining): nobody sends before
-- p_seconds have passed, and the bucket starts empty after that.
-- +goose StatementBegin
CREATE FUNCTION waybill.carrier_rate_block(p_carrier text, p_seconds double precision)
RETURNS void
LANGUAGE sql
AS $$
    INSERT INTO waybill.carrier_rate_limits AS l (carrier, tokens, updated_at, blocked_until)
    VALUES (p_carrier, 0, clock_timestamp(), clock_timestamp() + make_interval(secs => p_seconds))
    ON CONFLICT (carrier) DO UPDATE
    SET tokens = 0, updated_at = clock_timestamp(),
        blocked_until = greatest(l.blocked_until, clock_timestamp() + make_interval(secs => p_seconds));
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION waybill.carrier_rate_block(text, double precision);
DROP FUNCTION waybill.carrier_rate_take(text, double precision, boolean);
DROP TABLE waybill.carrier_rate_limits;
DROP TABLE waybill.dispatch_batches;
