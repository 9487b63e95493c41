// Package orders is the order and the rules of its life: the canonical payload, the statuses and
// which event may move an order to which (lifecycle.go, pure functions), and how orders are
// stored. Other packages turn the rows they read into Order before applying these rules.
package orders
