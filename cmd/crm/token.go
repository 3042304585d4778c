package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/clubcrm/crm/adapters/auth"
)

func init() {
	register(command{
		name:    "token",
		summary: "mint a development JWT signed with CRM_JWT_SECRET",
		usage:   "--tenant T --roles crm:read,crm:write [--sub S] [--ttl 1h]",
		run:     runToken,
	})
}

func runToken(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet(commands["token"], stdout)
	var cfg Config
	validate := bindConfig(fs, &cfg, "CRM_JWT_SECRET")
	tenant := fs.String("tenant", "", "tenant the token acts for ('*' for a platform token that may post events for any tenant)")
	roles := fs.String("roles", auth.RoleRead, "comma-separated roles")
	sub := fs.String("sub", "dev-user", "subject (the user or service the token names)")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := validate(); err != nil {
		return err
	}
	var errs []error
	if cfg.JWTSecret == "" {
		errs = append(errs, errors.New("CRM_JWT_SECRET: must be set to mint a token"))
	}
	if *tenant == "" {
		errs = append(errs, errors.New("--tenant: must be set"))
	}
	if *ttl <= 0 {
		errs = append(errs, errors.New("--ttl: must be positive"))
	}
	list := splitList(*roles)
	for _, r := range list {
		if !known(r) {
			errs = append(errs, fmt.Errorf("--roles: unknown role %q (known: %v)", r, auth.Roles))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	tok, err := auth.Mint([]byte(cfg.JWTSecret), auth.Principal{Subject: *sub, Tenant: *tenant, Roles: list}, *ttl, time.Now())
	if err != nil {
		return fmt.Errorf("mint token: %w", err)
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func known(role string) bool {
	for _, r := range auth.Roles {
		if r == role {
			return true
		}
	}
	return false
}
