package segment_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/clubcrm/crm/domain/segment"
)

const day = 24 * time.Hour

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"30d", 30 * day},
		{"12h", 12 * time.Hour},
		{"2w", 14 * day},
		{"90m", 90 * time.Minute},
		{"1m", time.Minute},
		{"1h", time.Hour},
		{"1d", day},
		{"1w", 7 * day},
		{"  30d  ", 30 * day},    // trimmed
		{"\t45d\n", 45 * day},    // any white space
		{"007d", 7 * day},        // leading zeros are still a whole number
		{"3650d", 3650 * day},    // exactly ten years
		{"87600h", 3650 * day},   // ten years in hours
		{"5256000m", 3650 * day}, // ten years in minutes
		{"521w", 521 * 7 * day},  // the most whole weeks within ten years
		{"100000m", 100000 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := segment.ParseDuration(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, 10*365*day, segment.MaxWindow)
}

func TestParseDurationInvalid(t *testing.T) {
	tests := []struct {
		in, msg string
	}{
		{"", `"" is not a duration`},
		{"   ", `"" is not a duration`},
		{"d", `"d" is not a duration`},
		{"5", `"5" is not a duration`},
		{"30", `"30" is not a duration`},
		{"0d", `"0d" is not a duration`},
		{"0m", `"0m" is not a duration`},
		{"-1d", `"-1d" is not a duration`},
		{"-30m", `"-30m" is not a duration`},
		{"1y", `"1y" is not a duration`},
		{"1s", `"1s" is not a duration`},
		{"30D", `"30D" is not a duration`}, // units are lower case
		{"30H", `"30H" is not a duration`},
		{"1.5d", `"1.5d" is not a duration`},
		{"1e3d", `"1e3d" is not a duration`},
		{"0x10d", `"0x10d" is not a duration`},
		{"1_000m", `"1_000m" is not a duration`},
		{"30 d", `"30 d" is not a duration`},
		{"d30", `"d30" is not a duration`},
		{"dd", `"dd" is not a duration`},
		{"30dd", `"30dd" is not a duration`},
		{"1h30m", `"1h30m" is not a duration`},
		{"99999999999999999999d", `is not a duration`}, // overflows int64
		{" 1y ", `"1y" is not a duration`},             // reported trimmed
		{"3651d", `"3651d" is longer than ten years`},
		{"87601h", `"87601h" is longer than ten years`},
		{"5256001m", `"5256001m" is longer than ten years`},
		{"522w", `"522w" is longer than ten years`},
		{"9223372036854775807m", `is longer than ten years`},
		{"9223372036854775807w", `is longer than ten years`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := segment.ParseDuration(tt.in)
			require.Error(t, err)
			assert.Zero(t, got)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestParseDurationErrorExplains(t *testing.T) {
	_, err := segment.ParseDuration("soon")
	require.Error(t, err)
	assert.Equal(t, `"soon" is not a duration: use a whole number and m, h, d or w, such as "30d" or "12h"`, err.Error())
}
