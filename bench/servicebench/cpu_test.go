package servicebench

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestProcessorTime(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc here")
	}
	// A child that spins until killed, as crm serve works during a phase.
	child := exec.Command("sh", "-c", "while :; do :; done")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	before := readCPU(child.Process.Pid)
	if !before.ok {
		t.Fatal("read nothing from /proc")
	}
	// On a machine busy with other tests the child may wait for a
	// processor: wait until its clock has moved, not a fixed while.
	var after cpuClock
	for deadline := time.Now().Add(10 * time.Second); ; {
		time.Sleep(100 * time.Millisecond)
		after = readCPU(child.Process.Pid)
		if after.crmSecs > before.crmSecs && after.busy > before.busy || time.Now().After(deadline) {
			break
		}
	}
	cost := after.since(before, 2000)
	if cost == nil {
		t.Fatal("no cost")
	}
	if cost.CRM <= 0 || cost.Busy <= 0 || cost.Busy > 1 {
		t.Errorf("cost of a spinning child: %+v", cost)
	}
	// since divides by the thousands of events: 2,000 events halve it.
	if got, want := cost.CRM, (after.crmSecs-before.crmSecs)/2; got != want {
		t.Errorf("crm per 1,000 events = %v, want %v", got, want)
	}

	comm, own, _, ppid, err := procStat(os.Getpid())
	if err != nil || comm == "" || own < 0 || ppid <= 0 { // own may be 0: the test has used under a tick
		t.Errorf("procStat(self) = %q, %v, ppid %d, %v", comm, own, ppid, err)
	}
	if (cpuClock{}).since(before, 1000) != nil {
		t.Error("a clock that read nothing gave a cost")
	}
}
