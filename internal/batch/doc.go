// Package batch turns many concurrent single calls into few batched ones, the way Postgres's
// group commit does: while one batch is in flight, arrivals queue up and go together in the next.
package batch
