// Package dispatch sends pending orders to their carrier: the River worker behind the outbox
// trigger, and the batch that records carriers' answers.
package dispatch
