// Command waybill carries orders from the monolith to delivery carriers and the carriers'
// status updates back. `waybill help` lists its commands.
package main
