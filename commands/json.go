package commands

import "github.com/segmentio/encoding/json"

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func parseCompetition(b []byte) (Competition, error) {
	var c Competition
	err := json.Unmarshal(b, &c)
	return c, err
}
