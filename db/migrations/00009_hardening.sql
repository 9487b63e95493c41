-- Hardening (issue 10).
--
-- 1. The monolith's role inserts the contract's columns and nothing else. With INSERT on the whole
--    table it could give an order an id of its choosing (INSERT … OVERRIDING SYSTEM VALUE), which
--    the identity sequence later hands out again, so intake fails on the primary key, and it could
--    backdate created_at. Column privileges leave id, status, created_at … to their defaults and
--    to Waybill. RETURNING reads columns, which the table-wide SELECT of 00006 already allows.
-- 2. A redrive records the database login that did it (session_user, which SECURITY DEFINER does
--    not change) beside the free-text `by` the caller gives.

-- +goose Up
REVOKE INSERT ON waybill.orders FROM waybill_monolith;
GRANT INSERT (external_id, carrier, kind, payload) ON waybill.orders TO waybill_monolith;

ALTER TABLE waybill.dead_jobs ADD COLUMN redriven_session_user text;
COMMENT ON COLUMN waybill.dead_jobs.redriven_session_user IS
    'The database login that redrove the job (session_user); redriven_by is what the caller said.';

-- As in 00004, plus redriven_session_user.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION waybill.dead_job_redriven(dead_job_id bigint, job_kind text, job_args jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF job_kind = 'dispatch_order' THEN
        UPDATE waybill.orders
        SET status = 'pending', status_reason = NULL, status_at = now(), updated_at = now()
        WHERE id = waybill.job_order_id(job_args) AND status = 'rejected';
    END IF;
    UPDATE waybill.dead_jobs d
    SET redriven_at           = now(),
        redriven_by           = coalesce(nullif(current_setting('waybill.redrive_by', true), ''), session_user),
        redriven_via          = coalesce(nullif(current_setting('waybill.redrive_via', true), ''), 'river_ui'),
        redriven_session_user = session_user
    WHERE d.job_id = dead_job_id AND d.redriven_at IS NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION waybill.dead_job_redriven(dead_job_id bigint, job_kind text, job_args jsonb) RETURNS void
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
ALTER TABLE waybill.dead_jobs DROP COLUMN redriven_session_user;

REVOKE INSERT (external_id, carrier, kind, payload) ON waybill.orders FROM waybill_monolith;
GRANT INSERT ON waybill.orders TO waybill_monolith;
