package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/google/uuid"
	"github.com/segmentio/encoding/json"

	"github.com/clubcrm/crm/adapters/postgres"
	app "github.com/clubcrm/crm/commands"
	"github.com/clubcrm/crm/domain/scoring"
)

func init() {
	register(command{
		name:    "scoring",
		summary: "show a tenant's scoring model, or set it from a JSON file",
		usage:   "[flags] show --tenant T [--version N] | set --tenant T --file model.json [--actor A]",
		run:     runScoring,
	})
}

func runScoring(ctx context.Context, args []string, stdout io.Writer) error {
	c := commands["scoring"]
	fs := newFlagSet(c, stdout)
	var cfg Config
	validate := bindConfig(fs, &cfg, "DATABASE_URL", "CRM_EVENTSTORE", "EVENTSTORE_URL", "CRM_LOG_LEVEL")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := validate(); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return errUsage
	}
	sub := newFlagSet(command{name: "scoring " + fs.Arg(0), usage: c.usage}, stdout)
	tenant := sub.String("tenant", "", "the tenant (required)")
	file := sub.String("file", "", "set: the model as JSON (fields left out take the built-in values); - for standard input")
	version := sub.Uint64("version", 0, "show: a past version (0: the current one)")
	actorName := sub.String("actor", "cli", "set: who is recorded as changing the model")
	if err := parse(sub, fs.Args()[1:]); err != nil {
		return err
	}
	if *tenant == "" {
		return fmt.Errorf("--tenant: must be set")
	}
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	store, err := openEventStore(ctx, &cfg, pool)
	if err != nil {
		return err
	}
	defer store.Close()
	models := &app.ScoringModels{Store: store}
	var out scoring.Versioned
	switch fs.Arg(0) {
	case "show":
		if *version > 0 {
			out, err = models.At(ctx, *tenant, *version)
		} else {
			out, err = models.Current(ctx, *tenant)
		}
	case "set":
		if *file == "" {
			return fmt.Errorf("--file: must be set")
		}
		var b []byte
		if *file == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(*file)
		}
		if err != nil {
			return fmt.Errorf("--file: %w", err)
		}
		m := scoring.Default()
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("--file %s: %w", *file, err)
		}
		out, err = models.Put(ctx, *tenant, *actorName, "cli:"+uuid.NewString(), m)
	default:
		sub.Usage()
		return errUsage
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
