// Command waybill-bench measures Waybill end to end on one machine: it builds and starts the
// real `waybill serve` and `waybill sandbox` against a database of its own, offers orders and
// webhooks at a fixed rate, measures plain INSERTs and River draining no-op jobs on the same
// Postgres in the same run, and prints every figure against the targets of issue 5. See
// BENCHMARKS.md.
package main
