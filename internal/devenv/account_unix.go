//go:build unix

package devenv

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// account is the unprivileged user the private cluster runs as when waybill dev runs as root:
// initdb, pg_ctl and postgres all refuse root. nil means the current user.
type account struct {
	name     string
	uid, gid uint32
}

// serviceAccount returns nil unless running as root; then the distribution's postgres user if
// there is one, else nobody.
func serviceAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &account{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root, and PostgreSQL refuses root, but there is no postgres or nobody user to run it as")
}

// String names the account for messages.
func (a *account) String() string {
	if a == nil {
		return "the current user"
	}
	return "user " + a.name
}

// apply makes cmd run as the account, with no supplementary groups.
func (a *account) apply(cmd *exec.Cmd) {
	if a == nil {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.uid, Gid: a.gid}}
}

func (a *account) chown(path string) error {
	if a == nil {
		return nil
	}
	return os.Chown(path, int(a.uid), int(a.gid))
}

// canReach reports whether the account may traverse every directory down to dir: a checkout
// under /root is out of reach of an unprivileged user.
func (a *account) canReach(dir string) bool {
	if a == nil {
		return true
	}
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		mode := fi.Mode().Perm()
		var search os.FileMode
		switch {
		case st.Uid == a.uid:
			search = mode & 0o100
		case st.Gid == a.gid:
			search = mode & 0o010
		default:
			search = mode & 0o001
		}
		if search == 0 {
			return false
		}
		if p == filepath.Dir(p) {
			return true
		}
	}
}
