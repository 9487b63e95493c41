// Package ratelimit holds a carrier organisation's request budget, shared by every `waybill
// serve` on the same database. Carriers such as Onfleet limit requests per organisation, not per
// process, so the budget lives in Postgres (waybill.carrier_rate_limits): a token bucket taken
// with one small UPDATE per request, which also serves as the coordinator between instances.
package ratelimit
