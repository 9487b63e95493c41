// Package carrier is the seam between Waybill and a delivery carrier, both ways. On the way out,
// Carrier (and BatchCarrier, SyncBatchCarrier) creates and finds tasks, and Error's classes
// decide how dispatch retries. On the way back, Source verifies a carrier's webhook (CheckHMAC),
// parses it into a carrier-neutral Event, and brings the carrier's Vocabulary, which Translate
// turns into an Outcome for the order. The rules of an order's life stay in internal/orders.
//
// Each carrier is one package beside this one holding both halves: onfleet (its API client and
// its webhooks: signature, parsing, trigger names, vocabulary, the metadata keys it stores on
// tasks), generic (carriers declared in WAYBILL_CARRIERS_FILE), and sandbox (a fake carrier for
// development and tests). webhook (intake and the translate/act pipeline), dispatch and
// reconcile know carriers only through this package.
//
// Adding a carrier is one package and one line of wiring:
//
//  1. internal/carrier/<name>: a type implementing Carrier (batch interfaces optional) and one
//     implementing Source (BatchSource if the carrier announces finished batches by webhook),
//     with its vocabulary and table tests for both halves;
//  2. internal/daemon's buildCarriers: add the carrier and its source to the lists it returns.
//
// A carrier that fits the generic adapter needs no code at all: a YAML entry in
// WAYBILL_CARRIERS_FILE (examples/carriers.yaml).
package carrier
