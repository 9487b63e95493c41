// Package background runs a service's long-lived loops (group commits, batch trackers, the
// alarm recorder) and stops them on the way out, each waited for, last started first.
package background
