// Package onfleettest gives tests Onfleet's webhooks as Onfleet documents them (testdata/), a
// signature computed independently of the code under test, and task metadata as dispatch
// stores it. Tests only.
package onfleettest
