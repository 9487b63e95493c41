// Package notify tells people and systems what happened: email to the logistics team, Slack to
// the developers, a signed HTTP callback to the monolith. Each is a River job on QueueNotify.
package notify
