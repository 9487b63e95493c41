-- River's job table carries two GIN indexes, on args and metadata, for searching jobs by their
-- contents. Waybill never searches jobs that way (River UI and ops queries filter by kind, queue
-- and state, and waybill.dead_jobs keeps dead jobs' args), yet every job row version, that is the
-- INSERT by the outbox trigger and the UPDATE of each fetch, pays for both: ~11% of the monolith's
-- INSERT throughput and a share of every fetch (measured with pgbench; see BENCHMARKS.md).
-- Dispatch jobs are deleted when done, so the table holds only work in flight and failed jobs, and
-- a scan of it is cheap. River's later migrations do not touch these indexes (checked up to its
-- migration 008); Down puts them back, as River creates them.

-- +goose Up
DROP INDEX waybill.river_job_args_index;
DROP INDEX waybill.river_job_metadata_index;

-- +goose Down
CREATE INDEX river_job_args_index ON waybill.river_job USING GIN (args);
CREATE INDEX river_job_metadata_index ON waybill.river_job USING GIN (metadata);
