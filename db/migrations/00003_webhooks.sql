-- +goose Up

-- Carrier webhooks exactly as they arrived, once verified. The intake stores the row and enqueues
-- its translate job in one transaction; the translate job records what the event meant.
-- No foreign key to waybill.carriers: every intake insert would take a share lock on the same
-- carrier row, and the handler only accepts configured carriers anyway.
CREATE TABLE waybill.webhook_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    carrier        text NOT NULL,
    -- The carrier's identity of the event, so a redelivery is recognised. Onfleet:
    -- "<taskId>:<triggerId>:<time>"; carriers with an event id: that id; events with neither:
    -- a hash of the body.
    event_key      text NOT NULL,
    -- The raw body, byte for byte: the signature was computed over exactly these bytes.
    body           bytea NOT NULL,
    -- Request headers as received (credentials left out), {"Name": "value, value"}.
    headers        jsonb NOT NULL DEFAULT '{}',
    -- The peer address that sent it (see headers for X-Forwarded-For behind a proxy).
    source_addr    text NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    -- Set by the translate job, NULL until then: 'status' (moves an order), 'recorded' (order
    -- history only), 'ignored' (not about a task, or not our task), 'quarantined' (unknown or
    -- unreadable; Slack was told).
    outcome        text CONSTRAINT webhook_events_outcome_check
                   CHECK (outcome IN ('status', 'recorded', 'ignored', 'quarantined')),
    outcome_detail text,
    order_id       bigint CONSTRAINT webhook_events_order_id_fkey REFERENCES waybill.orders (id) ON DELETE SET NULL,
    translated_at  timestamptz,
    CONSTRAINT webhook_events_carrier_event_key_key UNIQUE (carrier, event_key)
);

-- An order's raw webhooks (ops), and the foreign key's ON DELETE.
CREATE INDEX webhook_events_order_id_idx ON waybill.webhook_events (order_id) WHERE order_id IS NOT NULL;
-- What is in quarantine, newest first; stays tiny.
CREATE INDEX webhook_events_quarantined_idx ON waybill.webhook_events (received_at) WHERE outcome = 'quarantined';

-- An order's history: one row per distinct carrier event about it, late and repeated events
-- included (applied = false), never two rows for one event.
CREATE TABLE waybill.order_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id         bigint NOT NULL CONSTRAINT order_events_order_id_fkey REFERENCES waybill.orders (id) ON DELETE CASCADE,
    -- The canonical status the event means; NULL for events that only inform (ETA, arrival, delay).
    status           text CONSTRAINT order_events_status_check CHECK (status IN (
                         'pending', 'dispatched', 'assigned', 'in_transit', 'delivered', 'picked_up',
                         'failed_attempt', 'returned', 'cancelled', 'exception', 'rejected')),
    -- The carrier's own word, e.g. Onfleet's trigger name "taskCompleted".
    carrier_status   text NOT NULL,
    -- Event time at the carrier.
    occurred_at      timestamptz NOT NULL,
    -- Whether the event moved the order's status (false: informative, late, or after a final status).
    applied          boolean NOT NULL,
    -- webhook_events.event_key: the uniqueness below holds even after raw webhooks are purged.
    event_key        text NOT NULL,
    webhook_event_id bigint CONSTRAINT order_events_webhook_event_id_fkey REFERENCES waybill.webhook_events (id) ON DELETE SET NULL,
    -- Carrier facts worth keeping (reason, worker, ETA…) and the status before, when applied.
    details          jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_events_order_id_event_key_key UNIQUE (order_id, event_key)
);

-- The foreign key's ON DELETE SET NULL when raw webhooks are purged.
CREATE INDEX order_events_webhook_event_id_idx ON waybill.order_events (webhook_event_id);

-- +goose Down
DROP TABLE waybill.order_events;
DROP TABLE waybill.webhook_events;
