// Package onfleet is the Onfleet carrier, both halves. Outbound, Client creates tasks through
// Onfleet's API v2 (one by one or in async batches) and finds them again by the metadata Waybill
// stores on them (Onfleet has no idempotency key; MetaExternalID, MetaOrderID, MetaBatchID).
// Inbound, Source verifies Onfleet's signed webhooks and reads them into carrier.Event, with
// Triggers and Vocabulary saying what each trigger means for an order.
package onfleet
