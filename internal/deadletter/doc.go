// Package deadletter reads and redrives Waybill's dead letters: the River jobs that died
// (discarded after their last attempt, or cancelled), which the triggers of
// db/migrations/00004_dead_jobs.sql copy into waybill.dead_jobs as they die.
package deadletter
