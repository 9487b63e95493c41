-- name: TxCommitAsync :exec
-- This transaction's commit does not wait for the WAL flush. Only for work that is safe to
-- redo: Waybill's own job transactions (dispatch completion, translate, act) are idempotent,
-- and a crash that loses such a commit leaves the job to run again. Never for the monolith's
-- INSERT or River's fetch (its attempt count decides whether dispatch looks a task up first).
SELECT set_config('synchronous_commit', 'off', true);
