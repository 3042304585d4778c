package projections

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/eventstore/postgres"
)

// runHelper is the projector process the multi-process tests start: it
// runs one counter projector from the environment until SIGTERM (or a
// SIGKILL, which is the point).
func runHelper() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	delay, _ := time.ParseDuration(os.Getenv("CRM_TEST_DELAY"))
	batch, _ := strconv.Atoi(os.Getenv("CRM_TEST_BATCH"))
	pool, err := pgxpool.New(ctx, os.Getenv("CRM_TEST_DSN"))
	if err != nil {
		log.Error("helper: pool", "err", err)
		return 1
	}
	defer pool.Close()
	store := postgres.New(pool, postgres.WithPollInterval(200*time.Millisecond))
	defer store.Close()
	p := &counter{name: os.Getenv("CRM_TEST_PROJECTOR"), delay: delay, announce: os.Stdout}
	rt, err := New(pool, store, []Projector{p}, WithLogger(log), WithBatchSize(batch),
		WithElectionInterval(250*time.Millisecond), WithRetryBackoff(20*time.Millisecond, 200*time.Millisecond))
	if err != nil {
		log.Error("helper: runtime", "err", err)
		return 1
	}
	defer rt.Close()
	if err := rt.Run(ctx); err != nil {
		log.Error("helper: run", "err", err)
		return 1
	}
	return 0
}

// proc is a projector process started by a test.
type proc struct {
	cmd     *exec.Cmd
	applies chan int // the size of each batch as Apply starts it
	exited  chan struct{}
	stderr  *syncBuffer
}

// startProc starts a projector process running the counter projector name.
func startProc(t *testing.T, e *env, name string, delay time.Duration, batch int) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		helperEnv+"=1",
		"CRM_TEST_DSN="+e.dsn,
		"CRM_TEST_PROJECTOR="+name,
		"CRM_TEST_DELAY="+delay.String(),
		"CRM_TEST_BATCH="+strconv.Itoa(batch),
	)
	p := &proc{cmd: cmd, applies: make(chan int, 10_000), exited: make(chan struct{}), stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "apply %d", &n); err == nil {
				p.applies <- n
			}
		}
		cmd.Wait() //nolint:errcheck // killed on purpose
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("process %d log:\n%s", cmd.Process.Pid, p.stderr.String())
		}
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL and waits until the process is gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGKILL)
}

// stop asks the process to shut down cleanly and waits for it.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("process %d did not exit after %v", p.pid(), sig)
	}
}

// waitApply waits for the process to start applying its n-th batch.
func (p *proc) waitApply(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(visibilityTimeout)
	for i := 0; i < n; i++ {
		select {
		case <-p.applies:
		case <-p.exited:
			t.Fatalf("process %d exited:\n%s", p.pid(), p.stderr.String())
		case <-timeout:
			t.Fatalf("process %d applied no batch for %v", p.pid(), visibilityTimeout)
		}
	}
}

var pidInAppName = regexp.MustCompile(`\bpid=(\d+)\b`)

// leaderPID answers the process id of the process holding the projector's
// leadership lock, or 0 when none does.
func (e *env) leaderPID(name string) int {
	e.t.Helper()
	var app string
	err := e.pool.QueryRow(e.ctx, `SELECT coalesce(max(a.application_name), '')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid`, int64(leaderLockSpace), int64(lockKey(name))).Scan(&app)
	require.NoError(e.t, err)
	m := pidInAppName.FindStringSubmatch(app)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}
