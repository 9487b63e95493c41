// Package generic is a carrier declared by configuration: WAYBILL_CARRIERS_FILE lists carriers
// beyond Onfleet, and adding one takes configuration and vocabulary, no code.
// examples/carriers.yaml declares one, Acme, with every field explained.
//
// For each carrier the file says how to create a task (URL, method, headers, credential, a
// text/template that renders the order as the carrier's JSON, where the task id and tracking
// URL are in the answer), optionally how to find a task by the order's external_id and how to
// create many tasks in one request, how its webhooks are signed (an HMAC-SHA256 or -SHA512 of
// the raw body, hex or base64, in a header, after an optional prefix), where the event id, task
// id, status and time are in a webhook, and what each of its status words means.
//
// A Carrier implements carrier.Carrier with the error classes dispatch acts on (429 rate
// limited, 401/403/404/405 unauthorized, other 4xx rejected with the carrier's message,
// timeouts and 5xx transient and ambiguous). Its WebhookSource implements carrier.Source.
//
// # Duplicates
//
// A request that times out may have created the task. Dispatch then calls FindTask before
// creating again; a carrier without find_task always answers "none", so it is protected
// against a second task only when it honours create_task.idempotency_header (the order's
// external_id is sent in it on every create).
//
// # Batches
//
// A carrier that declares create_batch creates many tasks in one request: its body is the list
// of create_task bodies (under items_key), and its answer lists each task's outcome (created,
// refused with the carrier's words, or absent: not created), matched to orders by the reference
// each result carries, never by position. Carrier then implements carrier.SyncBatchCarrier with
// MaxBatch create_batch.max; without create_batch MaxBatch is 1 and dispatch sends each order
// with CreateTask. After a batch request that may have created tasks (timeout, 5xx, an answer
// naming none of its orders), dispatch looks each order up with FindTask; the idempotency
// header is not sent with a batch, so a carrier with create_batch but no find_task is warned
// about at start.
//
// # Paths
//
// Answers and webhooks are read with dotted paths (see Path): "data.id", "items.0.sku".
//
// # Templates
//
// URL templates see .ExternalID, .OrderID and .Kind, percent-encoded. Body templates see
// .OrderID, .ExternalID, .Kind, .Pickup and .Payload (orders.Payload), raw, and quote them with
// the helpers json (any value as JSON), ms and unix (a time as Unix milliseconds or seconds)
// and rfc3339 (a time as a quoted RFC 3339 string); each prints one JSON value, null for a
// missing time. Parse renders every template for sample orders, so one that would fail on some
// orders fails at start.
//
// # Environment
//
// Secrets stay in the environment: fields ending in _env name a variable, and URLs and header
// values may say ${NAME} or ${NAME:-default}. A variable named but not set is an error.
package generic
