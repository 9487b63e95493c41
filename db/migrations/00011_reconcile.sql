-- +goose Up

-- Reconciliation (internal/reconcile): orders the carrier has been silent about are looked up at
-- the carrier, and what it says is stored as a synthetic webhook event that goes through the same
-- translate → act path as a real one. learnt_by says how Waybill learnt an event.
ALTER TABLE waybill.webhook_events
    ADD COLUMN learnt_by text NOT NULL DEFAULT 'webhook'
        CONSTRAINT webhook_events_learnt_by_check CHECK (learnt_by IN ('webhook', 'poll'));
ALTER TABLE waybill.order_events
    ADD COLUMN learnt_by text NOT NULL DEFAULT 'webhook'
        CONSTRAINT order_events_learnt_by_check CHECK (learnt_by IN ('webhook', 'poll'));

-- The history rows polling wrote: the act job compares a webhook with them (one row per change,
-- whichever came first), and the "webhooks not arriving" alarm counts the recent applied ones.
-- Small: polling writes only what no webhook said.
CREATE INDEX order_events_learnt_by_poll_idx ON waybill.order_events (order_id, created_at) WHERE learnt_by = 'poll';
CREATE INDEX order_events_poll_applied_idx ON waybill.order_events (created_at) WHERE learnt_by = 'poll' AND applied;

-- When reconciliation last looked an in-flight order up at its carrier: the order is due again
-- once neither the carrier nor this check has said anything for WAYBILL_RECONCILE_AFTER.
CREATE TABLE waybill.reconcile_checks (
    order_id      bigint PRIMARY KEY CONSTRAINT reconcile_checks_order_id_fkey REFERENCES waybill.orders (id) ON DELETE CASCADE,
    checked_at    timestamptz NOT NULL,
    -- The carrier's state of the task when looked up (Onfleet: 0-3, or "missing").
    carrier_state text NOT NULL
);

-- What the last check of a carrier's webhook registrations found (`waybill carriers check`, and
-- the leader's periodic check); the carrier_webhooks alarm reads it.
CREATE TABLE waybill.carrier_webhook_checks (
    carrier    text PRIMARY KEY,
    checked_at timestamptz NOT NULL,
    -- The URL Waybill expects the carrier to call (empty: unknown, matched by path).
    url        text NOT NULL DEFAULT '',
    -- Trigger names Waybill needs that have no webhook for this service, whose webhook is
    -- disabled, or that point to another host's Waybill path.
    missing    text[] NOT NULL DEFAULT '{}',
    disabled   text[] NOT NULL DEFAULT '{}',
    elsewhere  text[] NOT NULL DEFAULT '{}',
    -- Why the check could not be made (the carrier refused, timed out…); '' when it was.
    error      text NOT NULL DEFAULT ''
);

GRANT SELECT ON waybill.reconcile_checks, waybill.carrier_webhook_checks TO waybill_ops;

-- +goose Down
DROP TABLE waybill.carrier_webhook_checks;
DROP TABLE waybill.reconcile_checks;
DROP INDEX waybill.order_events_poll_applied_idx;
DROP INDEX waybill.order_events_learnt_by_poll_idx;
ALTER TABLE waybill.order_events DROP COLUMN learnt_by;
ALTER TABLE waybill.webhook_events DROP COLUMN learnt_by;
