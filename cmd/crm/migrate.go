package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/clubcrm/crm/migrations"
)

func init() {
	register(command{
		name:    "migrate",
		summary: "create the database if missing and apply migrations (up), or list them (status)",
		usage:   "[flags] up|status",
		run:     runMigrate,
	})
}

func runMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet(commands["migrate"], stdout)
	var cfg Config
	validate := bindConfig(fs, &cfg, "DATABASE_URL", "CRM_LOG_LEVEL")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := validate(); err != nil {
		return err
	}
	action := "up"
	if fs.NArg() > 0 {
		action = fs.Arg(0)
	}
	switch action {
	case "up":
		if err := migrations.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
			return err
		}
		n, err := migrations.Up(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %d migration(s)\n", n)
	case "status":
		list, err := migrations.List(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
		for _, m := range list {
			state, at := "pending", ""
			if m.Applied {
				state, at = "applied", m.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", m.Version, m.Name, state, at)
		}
		return tw.Flush()
	default:
		fs.Usage()
		return errUsage
	}
	return nil
}
