package projections

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/clubcrm/crm/eventstore"
)

// progress reports a rebuild's advance: events read so far and the share of
// the log they cover (negative while unknown).
type progress interface {
	update(events int64, done float64)
	finish(events int64)
}

// newProgress answers a progress bar when w is a terminal and periodic log
// lines otherwise (a bar in a log file is noise).
func newProgress(w io.Writer, log *slog.Logger, name string) progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return newBarProgress(f, name)
	}
	return &logProgress{log: log, name: name, start: time.Now(), every: 5 * time.Second}
}

// doneShare estimates the share of the log between first and head that lies
// up to cur, from the positions alone: along their prepare parts, which
// count events in the PostgreSQL store (a sequence) and bytes in
// EventStoreDB, else along their commit parts. It answers -1 when the
// positions tell nothing.
func doneShare(first, cur, head eventstore.Position) float64 {
	span := func(a, b uint64) float64 {
		if b <= a {
			return 0
		}
		return float64(b - a)
	}
	total, done := span(first.Prepare, head.Prepare), span(first.Prepare, cur.Prepare)
	if total == 0 {
		total, done = span(first.Commit, head.Commit), span(first.Commit, cur.Commit)
	}
	if total == 0 {
		return -1
	}
	return min(1, done/total)
}

type barProgress struct {
	bar *progressbar.ProgressBar
}

func newBarProgress(w io.Writer, name string) *barProgress {
	return &barProgress{bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("rebuild "+name),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)}
}

func (p *barProgress) update(events int64, done float64) {
	if done > 0 {
		// The bar predicts the time left from its rate and its max, so the
		// max is the number of events the share implies.
		p.bar.ChangeMax64(max(events, int64(float64(events)/done)))
	}
	p.bar.Set64(events) //nolint:errcheck // drawing only
}

func (p *barProgress) finish(events int64) {
	p.bar.ChangeMax64(max(events, 1))
	p.bar.Set64(max(events, 1)) //nolint:errcheck
	p.bar.Finish()              //nolint:errcheck
}

type logProgress struct {
	log    *slog.Logger
	name   string
	start  time.Time
	every  time.Duration
	logged time.Time
}

func (p *logProgress) update(events int64, done float64) {
	if time.Since(p.logged) < p.every {
		return
	}
	p.logged = time.Now()
	elapsed := time.Since(p.start)
	attrs := []any{"projector", p.name, "events", events,
		"events_per_second", int64(float64(events) / max(elapsed.Seconds(), 1e-3))}
	if done > 0 {
		left := time.Duration(float64(elapsed) * (1 - done) / done)
		attrs = append(attrs, "done_percent", int(done*100), "time_left", left.Round(time.Second).String())
	}
	p.log.Info("rebuilding projection", attrs...)
}

func (p *logProgress) finish(events int64) {
	elapsed := time.Since(p.start)
	p.log.Info("projection rebuilt", "projector", p.name, "events", events,
		"elapsed", elapsed.Round(time.Millisecond).String(),
		"events_per_second", int64(float64(events)/max(elapsed.Seconds(), 1e-3)))
}
