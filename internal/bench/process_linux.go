package bench

import "syscall"

// sysProcAttr: children get SIGKILL when the bench dies, however it dies, and their own
// process group so a Ctrl-C in the terminal reaches the bench first and the bench stops them
// in order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
