package devenv

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clusterUser is the superuser initdb creates in a private cluster.
const clusterUser = "waybill"

// maxSocketPath is what fits in sockaddr_un.sun_path with the ".s.PGSQL.NNNNN.lock" name.
const maxSocketPath = 107

// cluster is a private PostgreSQL cluster: data in home/pg, its log in home/pg.log and the port
// it last used in home/pg.port.
type cluster struct {
	bin      binaries
	acct     *account
	data     string
	logFile  string
	portFile string
}

// startPrivateCluster initialises the cluster under opts.Dir once, starts it (or finds it
// already running) and creates DevDatabase on it.
func startPrivateCluster(ctx context.Context, opts Options, logger *slog.Logger) (*Postgres, error) {
	found := findBinaries(ctx, opts.binDirs())
	if len(found) == 0 {
		return nil, errors.New("no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin or on PATH")
	}
	acct, err := serviceAccount()
	if err != nil {
		return nil, err
	}
	home, err := clusterHome(opts.Dir, acct)
	if err != nil {
		return nil, err
	}
	if abs, _ := filepath.Abs(opts.Dir); home != abs {
		fmt.Fprintf(opts.Stdout, "postgres: %s cannot reach %s, so the private cluster lives in %s\n", acct, abs, home)
	}
	c := &cluster{
		acct:     acct,
		data:     filepath.Join(home, "pg"),
		logFile:  filepath.Join(home, "pg.log"),
		portFile: filepath.Join(home, "pg.port"),
	}
	if c.bin, err = chooseBinaries(found, c.data); err != nil {
		return nil, err
	}
	logger.DebugContext(ctx, "private Postgres cluster", "data", c.data, "binaries", c.bin.dir, "run_as", acct.String())

	if err := c.init(ctx, opts.Stdout); err != nil {
		return nil, fmt.Errorf("in %s: %w", c.data, err)
	}

	port, running, err := c.runningPort(ctx)
	if err != nil {
		return nil, fmt.Errorf("in %s: %w", c.data, err)
	}
	stop := noStop
	if running {
		fmt.Fprintf(opts.Stdout, "postgres: reusing the private cluster already running in %s on 127.0.0.1:%d\n", c.data, port)
	} else {
		if port, err = c.start(ctx); err != nil {
			return nil, fmt.Errorf("in %s: %w", c.data, err)
		}
		fmt.Fprintf(opts.Stdout, "postgres: started a private cluster (PostgreSQL %d) in %s on 127.0.0.1:%d, log %s\n", c.bin.major, c.data, port, c.logFile)
		stop = onceStop(c.stop)
	}

	serverURL := (&url.URL{Scheme: "postgres", User: url.User(clusterUser), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path: "/postgres", RawQuery: "sslmode=disable"}).String()
	devURL, err := setUpDatabase(ctx, serverURL, opts.DevDatabase)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("private cluster in %s on port %d: %w", c.data, port, err), stop(context.WithoutCancel(ctx)))
	}
	return &Postgres{URL: devURL, Source: SourcePrivateCluster, Stop: stop}, nil
}

// setUpDatabase creates name on the server and returns its URL.
func setUpDatabase(ctx context.Context, serverURL, name string) (string, error) {
	conn, err := connect(ctx, serverURL, databaseURLTimeout)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := createDatabase(ctx, conn, name); err != nil {
		return "", err
	}
	return withDatabase(serverURL, name)
}

// init runs initdb once. It builds the cluster beside its final place and renames it there when
// complete, so an interrupted initdb never leaves a half-made cluster to reuse.
func (c *cluster) init(ctx context.Context, stdout io.Writer) error {
	if _, err := os.Stat(filepath.Join(c.data, "PG_VERSION")); err == nil {
		return nil
	}
	if entries, err := os.ReadDir(c.data); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty but holds no PostgreSQL cluster; move it away", c.data)
	}
	fmt.Fprintf(stdout, "postgres: creating a private cluster (PostgreSQL %d) in %s, once\n", c.bin.major, c.data)

	building := c.data + ".init"
	if err := os.RemoveAll(building); err != nil {
		return err
	}
	if err := os.Mkdir(building, 0o700); err != nil {
		return err
	}
	if err := c.acct.chown(building); err != nil {
		return err
	}
	// --no-locale: the machine's locale may not exist in every environment; C always does.
	out, err := c.run(ctx, "initdb", "-D", building, "-U", clusterUser, "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	if err != nil {
		_ = os.RemoveAll(building)
		return fmt.Errorf("initdb as %s: %w: %s", c.acct, err, bytes.TrimSpace(out))
	}
	_ = os.Remove(c.data) // an empty directory left from before
	return os.Rename(building, c.data)
}

// runningPort reports whether the cluster is already running (a previous waybill dev that was
// killed, or one in another terminal) and on which port.
func (c *cluster) runningPort(ctx context.Context) (int, bool, error) {
	out, err := c.run(ctx, "pg_ctl", "status", "-D", c.data)
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && exitErr.ExitCode() == 3 { // not running
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("pg_ctl status: %w: %s", err, bytes.TrimSpace(out))
	}
	// Line 4 of postmaster.pid is the port.
	pid, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return 0, false, err
	}
	lines := strings.Split(string(pid), "\n")
	if len(lines) < 4 {
		return 0, false, fmt.Errorf("unexpected postmaster.pid: %q", pid)
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		return 0, false, fmt.Errorf("port in postmaster.pid: %w", err)
	}
	return port, true, nil
}

// start starts the cluster on the port it used last time if that is free, else on a new one,
// listening on 127.0.0.1 only, with its unix socket in the data directory (the system socket
// directory is not writable by an unprivileged user).
func (c *cluster) start(ctx context.Context) (int, error) {
	port := 0
	if b, err := os.ReadFile(c.portFile); err == nil {
		port, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if port <= 0 || !portFree(port) {
		var err error
		if port, err = freePort(); err != nil {
			return 0, err
		}
	}
	if err := os.WriteFile(c.portFile, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
		return 0, err
	}

	// pg_ctl opens the log as the account; make sure it may.
	f, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	f.Close()
	if err := c.acct.chown(c.logFile); err != nil {
		return 0, err
	}

	socketDir := shellQuote(c.data)
	if len(c.data)+len("/.s.PGSQL.65535.lock") > maxSocketPath {
		socketDir = "''" // too long for a unix socket: TCP only
	}
	// pg_ctl hands -o to /bin/sh, hence the quoting.
	serverOpts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s", port, socketDir)
	out, err := c.run(ctx, "pg_ctl", "start", "-D", c.data, "-l", c.logFile, "-w", "-t", "60", "-o", serverOpts)
	if err != nil {
		return 0, fmt.Errorf("pg_ctl start as %s: %w: %s\nlast lines of %s:\n%s", c.acct, err, bytes.TrimSpace(out), c.logFile, tail(c.logFile, 15))
	}
	return port, nil
}

func (c *cluster) stop(ctx context.Context) error {
	out, err := c.run(ctx, "pg_ctl", "stop", "-D", c.data, "-m", "fast", "-w", "-t", "60")
	if err != nil {
		return fmt.Errorf("stop private cluster in %s: %w: %s", c.data, err, bytes.TrimSpace(out))
	}
	return nil
}

// run runs one of the cluster's binaries as its account, from /, which any account can enter.
func (c *cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin.dir, name), args...)
	cmd.Dir = "/"
	c.acct.apply(cmd)
	return cmd.CombinedOutput()
}

// clusterHome is the absolute dir, created if needed. When the account cannot reach it (a
// checkout under /root, run as root), a directory in the system temp dir named after it is used.
func clusterHome(dir string, acct *account) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := mkdirReachable(abs); err != nil {
		return "", err
	}
	if acct.canReach(abs) {
		return abs, nil
	}
	sum := sha256.Sum256([]byte(abs))
	alt := filepath.Join(os.TempDir(), "waybill-pg-"+hex.EncodeToString(sum[:6]))
	if err := mkdirReachable(alt); err != nil {
		return "", err
	}
	if !acct.canReach(alt) {
		return "", fmt.Errorf("%s can reach neither %s nor %s", acct, abs, alt)
	}
	return alt, nil
}

// mkdirReachable creates dir readable by all whatever the umask; an existing dir is left alone.
func mkdirReachable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

// binaries is a directory holding initdb, pg_ctl and postgres of one PostgreSQL version.
type binaries struct {
	dir   string
	major int
}

// defaultBinDirs lists where PostgreSQL server binaries are found: PATH, then the layouts of
// Debian/Ubuntu and of the PGDG RPMs.
func defaultBinDirs() []string {
	dirs := filepath.SplitList(os.Getenv("PATH"))
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		matches, _ := filepath.Glob(pattern)
		dirs = append(dirs, matches...)
	}
	return dirs
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// findBinaries returns every distinct PostgreSQL installation in dirs, newest major first. A
// pg_ctl symlinked onto PATH counts for the directory it points to, where it looks for postgres.
func findBinaries(ctx context.Context, dirs []string) []binaries {
	var found []binaries
	seen := map[string]bool{}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		pgCtl, err := filepath.EvalSymlinks(filepath.Join(d, "pg_ctl"))
		if err != nil {
			continue
		}
		dir := filepath.Dir(pgCtl)
		if seen[dir] || !isExecutable(filepath.Join(dir, "initdb")) || !isExecutable(filepath.Join(dir, "postgres")) {
			continue
		}
		seen[dir] = true
		vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := exec.CommandContext(vctx, filepath.Join(dir, "postgres"), "--version").Output()
		cancel()
		m := versionRE.FindSubmatch(out)
		if err != nil || m == nil {
			continue
		}
		major, _ := strconv.Atoi(string(m[1]))
		found = append(found, binaries{dir: dir, major: major})
	}
	slices.SortStableFunc(found, func(a, b binaries) int { return cmp.Compare(b.major, a.major) })
	return found
}

// chooseBinaries picks the newest version, or for an existing cluster the version that made it.
func chooseBinaries(found []binaries, data string) (binaries, error) {
	b, err := os.ReadFile(filepath.Join(data, "PG_VERSION"))
	if err != nil {
		return found[0], nil
	}
	want, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for _, f := range found {
		if f.major == want {
			return f, nil
		}
	}
	return binaries{}, fmt.Errorf("the cluster in %s was made by PostgreSQL %d, which is not installed (found %d in %s); install it, or delete %s to start afresh",
		data, want, found[0].major, found[0].dir, data)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tail returns up to the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// onceStop makes stop safe to call more than once.
func onceStop(stop func(context.Context) error) func(context.Context) error {
	var once sync.Once
	var err error
	return func(ctx context.Context) error {
		once.Do(func() { err = stop(ctx) })
		return err
	}
}
