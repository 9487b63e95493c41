// Package archive moves old webhook events and order history out of Postgres into gzip JSON
// Lines files, deleting exactly what it wrote.
//
// Lifecycle of the data: a carrier webhook is stored raw in waybill.webhook_events and
// translated into waybill.order_events (the order's history) within seconds; both stay in
// Postgres for as long as `waybill archive --older-than` allows (90d is the suggested cron), then
// live on as files in the archive directory. Orders themselves are never archived. River's jobs
// follow River's retention (see 00004_dead_jobs.sql); dead letters stay in waybill.dead_jobs.
//
// Crash safety. Batches are processed one at a time, per table: select the next rows older
// than the cutoff FOR UPDATE; write them to a temporary file, fsync it, rename it to its final
// name (<table>-<seq>.jsonl.gz, a zero-padded sequence number continuing the directory's
// highest), fsync the directory; then delete those ids and commit. A final file therefore always
// holds complete rows, and only the newest file of a table can have rows that are still in the
// database (the process died between rename and commit). Each run starts by deleting the rows
// listed in each table's newest file, which finishes such a batch and is a no-op otherwise (ids
// are never reused). So a rerun after a crash neither archives a row twice nor loses one.
// Temporary files left by a crash before the rename are removed. Move files out of the
// directory only after a run that succeeded: the newest file per table is the recovery record.
package archive
