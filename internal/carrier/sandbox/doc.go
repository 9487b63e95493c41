// Package sandbox is an Onfleet-compatible fake carrier for development, tests and benchmarks
// (`waybill sandbox`; `make run` and the end-to-end tests use it as it is).
//
// Onfleet routes, at the root and under /api/v2, with Basic auth (base64 of "key:" or of the
// bare key, as Onfleet's SDKs send it):
//
//	POST   /tasks                   create one task
//	POST   /tasks/metadata          tasks whose metadata match
//	POST   /tasks/batch-async       {"tasks":[…]} (1–500) → {"jobId","status":"pending"}; tasks created after -batch-delay
//	GET    /tasks/batch/{jobId}     the job: status, submitted, tasksReceived, tasksCreated, tasksErrored,
//	                                errors[{statusCode,errorCode,message,cause,taskData}], failedTasks,
//	                                newTasks, newTasksWithWarnings
//	GET    /tasks/{id}              one task, its current state
//	GET    /tasks/all               ?from=&to=&lastId=&state=0,1,2,3: 64 a page, {"tasks":[…],"lastId"} while more remain
//	GET    /auth/test
//	GET    /webhooks, POST /webhooks, PUT /webhooks/{id}, DELETE /webhooks/{id}
//
// Any other path or method answers Onfleet's JSON error envelope (404, 405). Every route counts
// against the organisation's rate limit (-rate-limit, 20 a second by default, in any one-second
// window; 429 with error 2300 over it; X-RateLimit-Limit and X-RateLimit-Remaining on every
// answer).
//
// Webhooks, signed with X-Onfleet-Signature, walk each task through taskCreated, taskAssigned,
// taskStarted and taskCompleted (or a failure); a task created by a batch has no taskCreated,
// and a finished batch job fires taskBatchCreateJobCompleted (19). They go to -webhook-url
// (every trigger) and to the webhooks registered for their trigger.
//
// A test decides one task's fate with a marker in its destination's unparsed address or in its
// notes: RejectMarker (SANDBOX_REJECT) refuses it (error 1011), WarningMarker (SANDBOX_WARN)
// creates it, in a batch, with a warning. Other faults are random fractions set by flag or at
// runtime with POST /sandbox/faults (see Options). GET /sandbox/stats counts what it did.
package sandbox
