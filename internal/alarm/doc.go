// Package alarm tells people when Waybill needs them: Slack for integration problems (dead
// letters, a backlog, refused credentials, forged or mis-signed webhooks) and email to logistics
// for orders the carrier has gone silent about. A River periodic job runs the check on the
// elected leader only; each alarm's state lives in waybill.alarms and is updated in the
// transaction that enqueues its message, so a burst is one message with a count, a restart
// neither repeats nor forgets, and a cleared condition sends "resolved".
package alarm
