-- +goose Up

-- Every notification Waybill decided to send, and whether it went out: ops can read what the
-- logistics team, the developers and the monolith were told — and what was only logged because
-- the channel is not configured. Failed attempts are not here: they are River's job errors (and
-- the dead table once retries run out); a row is written in the transaction that completes the
-- job, so a row means it was sent (or deliberately skipped), exactly once per completed job.
CREATE TABLE waybill.notifications (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text NOT NULL CONSTRAINT notifications_kind_check CHECK (kind IN ('email', 'slack', 'callback')),
    outcome     text NOT NULL CONSTRAINT notifications_outcome_check CHECK (outcome IN ('sent', 'skipped')),
    -- Why it was skipped, e.g. "SMTP_URL is not set"; null when sent.
    skip_reason text,
    -- Email: the recipients. Slack and callback: the host posted to (never the full URL: a Slack
    -- webhook URL is itself a secret).
    target      text NOT NULL,
    -- Email subject, Slack title, or callback "<external_id>: <status>".
    subject     text NOT NULL,
    -- What was said: the email's text part, the Slack text, the callback's JSON body.
    body        text NOT NULL,
    -- No foreign key: alarms are not about one order, and notifications outlive archived data.
    order_id    bigint,
    external_id text,
    job_id      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT notifications_skip_reason_check CHECK ((outcome = 'skipped') = (skip_reason IS NOT NULL))
);

CREATE INDEX notifications_created_at_idx ON waybill.notifications (created_at);
CREATE INDEX notifications_order_id_idx ON waybill.notifications (order_id) WHERE order_id IS NOT NULL;

-- +goose Down
DROP TABLE waybill.notifications;
