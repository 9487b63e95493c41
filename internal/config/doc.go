// Package config reads Waybill's configuration from the environment, once, at start, and says
// exactly which variable is wrong.
package config
