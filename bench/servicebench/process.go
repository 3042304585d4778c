package servicebench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// buildCRM builds the crm binary into dir from the module at root, with the
// crmbench tag (see cmd/crm/benchpprof.go) and the version git describes.
func buildCRM(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "crm")
	version := "bench"
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "crmbench", "-trimpath",
		"-ldflags", "-X main.version="+version, "-o", bin, "./cmd/crm")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build crm: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot answers the directory of the go.mod the go command sees from
// the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the module: run from the repository")
	}
	return filepath.Dir(mod), nil
}

// freeAddr answers a loopback address nobody listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// server is a `crm serve` child process.
type server struct {
	cmd       *exec.Cmd
	addr      string // HTTP API
	pprofAddr string // "" unless profiling
	logPath   string
	started   time.Time
	done      chan struct{}
	waitErr   error
	log       *slog.Logger
	rss       *rssWatch
}

// serveEnv is what a serve child runs with, beyond its HTTP address.
type serveEnv struct {
	bin          string
	databaseURL  string
	redisURL     string
	jwtSecret    string
	consumerName string
	logDir       string
	profile      bool
}

// startServe starts `crm serve` with every role and waits until /readyz
// answers 200.
func startServe(ctx context.Context, e serveEnv, name string, log *slog.Logger) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &server{addr: addr, logPath: filepath.Join(e.logDir, name+".log"), done: make(chan struct{}), log: log}
	env := append(os.Environ(),
		"DATABASE_URL="+e.databaseURL,
		"REDIS_URL="+e.redisURL,
		"CRM_HTTP_ADDR="+addr,
		"CRM_JWT_SECRET="+e.jwtSecret,
		"CRM_CONSUMER_NAME="+e.consumerName,
		"CRM_EVENTSTORE=postgres",
		"CRM_LOG_LEVEL=warn",
		"CRM_ROLES=api,ingest,projector,scheduler",
	)
	if e.profile {
		if s.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		env = append(env, "CRM_BENCH_PPROF_ADDR="+s.pprofAddr)
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, fmt.Errorf("serve log: %w", err)
	}
	s.cmd = exec.Command(e.bin, "serve")
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	// The child must not outlive the harness, even when the harness is
	// killed outright.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start crm serve: %w", err)
	}
	s.rss = watchRSS(s.cmd.Process.Pid)
	go func() {
		s.waitErr = s.cmd.Wait()
		logFile.Close()
		close(s.done)
	}()
	log.Info("crm serve started", slog.Int("pid", s.cmd.Process.Pid), slog.String("addr", addr), slog.String("log", s.logPath))
	if err := s.waitReady(ctx, 2*time.Minute); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) url(path string) string { return "http://" + s.addr + path }

func (s *server) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("crm serve exited at start (%v); its log:\n%s", s.waitErr, tail(s.logPath, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get(s.url("/readyz"))
		if err == nil {
			io.Copy(io.Discard, resp.Body) //nolint:errcheck
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("crm serve not ready after %s; its log:\n%s", limit, tail(s.logPath, 20))
}

// alive answers an error once the child has exited.
func (s *server) alive() error {
	select {
	case <-s.done:
		return fmt.Errorf("crm serve exited (%v); its log:\n%s", s.waitErr, tail(s.logPath, 20))
	default:
		return nil
	}
}

// peakRSS answers the child's peak resident set so far (VmHWM), in bytes.
func (s *server) peakRSS() int64 {
	s.rss.sample()
	return s.rss.peak.Load()
}

// stop asks the child to shut down (SIGTERM, as an orchestrator would),
// kills it after 30 s, and answers its peak resident set in bytes while
// it served.
func (s *server) stop() int64 {
	select {
	case <-s.done:
	default:
		s.rss.sample()
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			s.log.Warn("crm serve did not stop in 30 s: killing it", slog.Int("pid", s.cmd.Process.Pid))
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	}
	s.rss.close()
	return s.rss.peak.Load()
}

// rssWatch samples a child's peak resident set (VmHWM) every quarter
// second until closed. The kernel's figure for a finished child (wait4's
// ru_maxrss) cannot be used: Go starts children with vfork and exec, and
// exec keeps the high-water mark of the memory it leaves, the harness's
// own, so every crm was charged at least the harness's resident set (636
// MiB for every process of the large run of 2026-12-05).
type rssWatch struct {
	pid  int
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func watchRSS(pid int) *rssWatch {
	w := &rssWatch{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			w.sample()
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// sample reads VmHWM now; once the process is gone it reads nothing.
func (w *rssWatch) sample() {
	if v := procStatusKB(w.pid, "VmHWM") * 1024; v > w.peak.Load() {
		w.peak.Store(v)
	}
}

// close stops the sampling.
func (w *rssWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// procStatusKB reads a "Name: N kB" line of /proc/<pid>/status.
func procStatusKB(pid int, name string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == name {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// runCRM runs a crm subcommand to completion, its output going to a log
// file, and answers its peak resident set in bytes.
func runCRM(ctx context.Context, e serveEnv, name string, args ...string) (int64, string, error) {
	logPath := filepath.Join(e.logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return 0, logPath, fmt.Errorf("%s log: %w", name, err)
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+e.databaseURL, "CRM_EVENTSTORE=postgres", "CRM_LOG_LEVEL=info")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, logPath, fmt.Errorf("crm %s: %w", strings.Join(args, " "), err)
	}
	rss := watchRSS(cmd.Process.Pid)
	err = cmd.Wait()
	rss.close()
	if err != nil {
		return rss.peak.Load(), logPath, fmt.Errorf("crm %s: %w; its log:\n%s", strings.Join(args, " "), err, tail(logPath, 20))
	}
	return rss.peak.Load(), logPath, nil
}

// tail answers the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// startProfile starts a CPU profile of the serve child (only when it was
// started with profiling); stopProfile ends it and writes it to path.
func (s *server) startProfile(ctx context.Context) error {
	if s.pprofAddr == "" {
		return nil
	}
	resp, err := s.benchPost(ctx, "/bench/cpu/start")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (s *server) stopProfile(ctx context.Context, path string) error {
	if s.pprofAddr == "" {
		return nil
	}
	resp, err := s.benchPost(ctx, "/bench/cpu/stop")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	return nil
}

func (s *server) benchPost(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.pprofAddr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("cpu profile: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return resp, nil
}
