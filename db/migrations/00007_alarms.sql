-- +goose Up

-- Alarm state, one row per condition (name) and subject (key: a carrier, an order id, or '' for
-- a global condition). The check that evaluates an alarm updates its row in the transaction that
-- enqueues the Slack or email job, so a restart neither repeats a message nor forgets one.
CREATE TABLE waybill.alarms (
    name             text NOT NULL,
    key              text NOT NULL DEFAULT '',
    state            text NOT NULL CONSTRAINT alarms_state_check CHECK (state IN ('firing', 'resolved')),
    -- Start of the current (or last) firing episode; null while the alarm has never fired (the row
    -- may exist only to keep details, e.g. the last dead letter already reported).
    first_fired_at   timestamptz,
    -- The last check that found the condition true.
    last_seen_at     timestamptz,
    last_notified_at timestamptz,
    resolved_at      timestamptz,
    -- Occurrences in the current episode, e.g. dead letters since it fired, and how many of them
    -- the last message covered (a reminder only goes out when there is news).
    count            bigint NOT NULL DEFAULT 0,
    notified_count   bigint NOT NULL DEFAULT 0,
    -- What the last message was about, and bookkeeping such as the last dead letter reported.
    details          jsonb NOT NULL DEFAULT '{}',
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (name, key)
);

-- Whether each carrier last accepted or refused our credentials. Dispatch records both, at most
-- about once a second per carrier and process; the alarm fires while the last refusal is newer
-- than the last success.
CREATE TABLE waybill.carrier_health (
    carrier              text PRIMARY KEY,
    last_success_at      timestamptz,
    last_auth_failure_at timestamptz,
    updated_at           timestamptz NOT NULL
);

-- Webhook requests refused for a bad signature, counted per carrier and minute. The webhook
-- handler stores nothing about a forged request; each process adds its in-memory count here about
-- once a second. Rows older than a day are deleted by the alarm check.
CREATE TABLE waybill.webhook_signature_failures (
    carrier  text NOT NULL,
    minute   timestamptz NOT NULL,
    failures bigint NOT NULL,
    PRIMARY KEY (carrier, minute)
);

-- Orders still on their way, for /metrics (exact counts by status) and the backlog and silence
-- alarms, without scanning every delivered order. Delivered, returned and the other final
-- statuses are left out, so the index stays the size of the work in flight.
CREATE INDEX orders_in_flight_idx ON waybill.orders (status, created_at)
    WHERE status IN ('pending', 'dispatched', 'assigned', 'in_transit');

-- +goose Down
DROP INDEX waybill.orders_in_flight_idx;
DROP TABLE waybill.webhook_signature_failures;
DROP TABLE waybill.carrier_health;
DROP TABLE waybill.alarms;
