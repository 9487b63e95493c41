//go:build !unix

package devenv

import "os/exec"

// account is the user the private cluster runs as; on systems without root it is always the
// current user (nil).
type account struct{}

func serviceAccount() (*account, error) { return nil, nil }

func (a *account) String() string       { return "the current user" }
func (a *account) apply(*exec.Cmd)      {}
func (a *account) chown(string) error   { return nil }
func (a *account) canReach(string) bool { return true }
