package servicebench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CPUCost is the processor time a phase took per 1,000 events: crm
// serve's own, PostgreSQL's (every process of the local server), and the
// rest of the machine's (Redis, the harness, the kernel). Unlike a rate,
// it hardly moves with how busy the machine was, so it compares builds
// across runs and machines of the same kind; it is what a change to the
// service's or the database's work per event shows in.
type CPUCost struct {
	CRM      float64 `json:"crmSeconds"`
	Postgres float64 `json:"postgresSeconds"` // zero when the server is not on this machine
	Rest     float64 `json:"restSeconds"`
	// Busy is the share of the machine's processors in use during the
	// phase: near 1, the phase was bound by processor time.
	Busy float64 `json:"machineBusy"`
}

func (c CPUCost) String() string {
	pg := "PostgreSQL not on this machine"
	if c.Postgres > 0 {
		pg = fmt.Sprintf("PostgreSQL %.2f s", c.Postgres)
	}
	return fmt.Sprintf("crm serve %.2f s, %s, the rest %.2f s per 1,000 events; processors %.0f%% busy", c.CRM, pg, c.Rest, 100*c.Busy)
}

// cpuClock reads processor time from /proc (Linux; elsewhere it reads
// nothing and the phase reports no cost).
type cpuClock struct {
	crm      int // pid of crm serve
	postgres float64
	crmSecs  float64
	busy     float64 // the machine's busy and total seconds, all processors
	total    float64
	ok       bool
}

// clockTicks is USER_HZ, the unit of /proc's times: 100 on every Linux
// architecture Go builds for.
const clockTicks = 100

func readCPU(crmPid int) cpuClock {
	c := cpuClock{crm: crmPid}
	busy, total, err := machineSeconds()
	if err != nil {
		return c
	}
	_, own, _, _, err := procStat(crmPid)
	if err != nil {
		return c
	}
	c.busy, c.total, c.crmSecs, c.ok = busy, total, own, true
	c.postgres = postgresSeconds()
	return c
}

// since answers the cost per 1,000 of events between then and c.
func (c cpuClock) since(then cpuClock, events int) *CPUCost {
	if !c.ok || !then.ok || events <= 0 || c.total <= then.total {
		return nil
	}
	per := 1000 / float64(events)
	crm := c.crmSecs - then.crmSecs
	pg := max(0, c.postgres-then.postgres)
	busy := c.busy - then.busy
	return &CPUCost{CRM: crm * per, Postgres: pg * per, Rest: max(0, busy-crm-pg) * per, Busy: min(1, busy/(c.total-then.total))}
}

// machineSeconds answers the busy and total processor seconds of the
// machine since boot (/proc/stat's first line; idle and iowait are idle).
func machineSeconds() (busy, total float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var idle float64
	for i, f := range fields[1:] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return (total - idle) / clockTicks, total / clockTicks, nil
}

// procStat reads /proc/<pid>/stat: the command name, own and reaped
// children's processor seconds, and the parent's pid.
func procStat(pid int) (comm string, own, children float64, ppid int, err error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0, 0, 0, err
	}
	// The name is in parentheses and may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, 0, 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	comm = string(b[open+1 : end])
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime to cstime 14 to 17.
	if len(f) < 15 {
		return "", 0, 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i-3], 64); return v }
	return comm, (num(14) + num(15)) / clockTicks, (num(16) + num(17)) / clockTicks, int(num(4)), nil
}

// postgresSeconds answers the processor seconds of the local PostgreSQL
// server: every process named postgres, and what the postmaster has
// reaped of backends that exited (its children's time), so a connection
// closed during the phase still counts. Zero when there is none.
func postgresSeconds() float64 {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	type proc struct {
		own, children float64
		ppid          int
	}
	procs := map[int]proc{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, own, children, ppid, err := procStat(pid)
		if err != nil || comm != "postgres" {
			continue
		}
		procs[pid] = proc{own, children, ppid}
	}
	var sum float64
	for _, p := range procs {
		sum += p.own
		if _, child := procs[p.ppid]; !child {
			sum += p.children // the postmaster
		}
	}
	return sum
}
