package scoring_test

import (
	"testing"

	"github.com/clubcrm/crm/domain/scoring"
)

// keen is a keen golfer's inputs: something on most days of the horizon.
func keen() scoring.Inputs {
	var in scoring.Inputs
	for d := scoring.Day(0); d < scoring.Horizon; d++ {
		if d%3 == 0 {
			continue
		}
		in.Activity(T-d, scoring.ChannelGolf, d%2 == 0)
		in.Sent(T - d)
		if d%4 == 0 {
			in.Opened(T - d)
		}
	}
	in.SetTier(T-300, "Gold")
	return in
}

func BenchmarkCompute(b *testing.B) {
	m := scoring.Default()
	for name, in := range map[string]scoring.Inputs{"typical": anna(), "keen": keen()} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				scoring.Compute(m, in, T)
			}
		})
	}
}

func BenchmarkEncodeDecode(b *testing.B) {
	for name, in := range map[string]scoring.Inputs{"typical": anna(), "keen": keen()} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := scoring.Decode(in.Encode()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValues(b *testing.B) {
	m := scoring.Default()
	in := anna()
	for b.Loop() {
		scoring.Values(m, in, T)
	}
}
