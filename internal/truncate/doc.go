// Package truncate shortens text for places with a limit: a column, a carrier's field, a line of
// a table, a Slack message.
package truncate
