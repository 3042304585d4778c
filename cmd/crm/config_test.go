package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigErrorsNameTheVariable(t *testing.T) {
	cases := []struct {
		env   map[string]string
		args  []string
		wants []string
	}{
		{env: map[string]string{"DATABASE_URL": "mysql://x/y"}, wants: []string{"DATABASE_URL", "scheme must be postgres"}},
		{env: map[string]string{"REDIS_URL": "::nope"}, wants: []string{"REDIS_URL"}},
		{env: map[string]string{"CRM_HTTP_ADDR": "8080"}, wants: []string{"CRM_HTTP_ADDR", "host:port"}},
		{env: map[string]string{"CRM_EVENTSTORE": "kafka"}, wants: []string{"CRM_EVENTSTORE", "postgres, esdb"}},
		{env: map[string]string{"EVENTSTORE_URL": "http://x:2113"}, wants: []string{"EVENTSTORE_URL", "esdb"}},
		{env: map[string]string{"CRM_JWT_SECRET": "short"}, wants: []string{"CRM_JWT_SECRET", "16 characters"}},
		{env: map[string]string{"CRM_JWKS_URL": "ftp://idp/keys"}, wants: []string{"CRM_JWKS_URL"}},
		{env: map[string]string{"CRM_LOG_LEVEL": "loud"}, wants: []string{"CRM_LOG_LEVEL", "debug, info, warn, error"}},
		{env: map[string]string{"CRM_ROLES": "api,cooking"}, wants: []string{"CRM_ROLES", "cooking"}},
		{env: map[string]string{"CRM_PROFILE_CACHE_SIZE": "-1"}, wants: []string{"CRM_PROFILE_CACHE_SIZE", "0 to 1000000"}},
		{args: []string{"--profile-cache-size", "lots"}, wants: []string{"--profile-cache-size"}},
		{args: []string{"--log-level", "shout"}, wants: []string{"--log-level"}},
		{env: map[string]string{"CRM_LOG_LEVEL": "loud", "CRM_EVENTSTORE": "kafka"}, wants: []string{"CRM_LOG_LEVEL", "CRM_EVENTSTORE"}},
		{env: map[string]string{"CRM_EVENTSTORE": "esdb"}, wants: []string{"EVENTSTORE_URL", "must be set"}},
		{env: map[string]string{"CRM_JWT_SECRET": ""}, wants: []string{"CRM_JWT_SECRET or CRM_JWKS_URL"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.wants, " "), func(t *testing.T) {
			t.Setenv("CRM_JWT_SECRET", "a-development-secret")
			t.Setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:1/never?sslmode=disable")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			err := dispatch(context.Background(), append([]string{"serve"}, c.args...), &out, &out)
			require.Error(t, err)
			for _, w := range c.wants {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConfigFlagOverridesEnvironment(t *testing.T) {
	t.Setenv("CRM_LOG_LEVEL", "warn")
	fs := newFlagSet(command{name: "x"}, &bytes.Buffer{})
	var cfg Config
	validate := bindConfig(fs, &cfg, "CRM_LOG_LEVEL", "CRM_HTTP_ADDR")
	require.NoError(t, fs.Parse([]string{"--log-level", "debug"}))
	require.NoError(t, validate())
	assert.Equal(t, "DEBUG", cfg.LogLevel.String())
	assert.Equal(t, ":8080", cfg.HTTPAddr)
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, dispatch(context.Background(), []string{"help"}, &out, &out))
	for _, c := range []string{"serve", "migrate", "token", "version"} {
		assert.Contains(t, out.String(), c)
	}
	out.Reset()
	t.Setenv("CRM_JWT_SECRET", "never-shown-in-help-output")
	err := dispatch(context.Background(), []string{"serve", "-h"}, &out, &out)
	require.Error(t, err)
	assert.Contains(t, out.String(), "DATABASE_URL")
	assert.Contains(t, out.String(), "-http-addr")
	assert.NotContains(t, out.String(), "never-shown-in-help-output")
	assert.Error(t, dispatch(context.Background(), []string{"frobnicate"}, &out, &out))
}

func TestTokenCommand(t *testing.T) {
	t.Setenv("CRM_JWT_SECRET", "a-development-secret")
	var out bytes.Buffer
	require.NoError(t, dispatch(context.Background(), []string{"token", "--tenant", "demo", "--roles", "crm:read,crm:admin"}, &out, &out))
	assert.Equal(t, 2, strings.Count(strings.TrimSpace(out.String()), "."))

	err := dispatch(context.Background(), []string{"token", "--roles", "crm:root"}, &out, &out)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--tenant")
	assert.Contains(t, err.Error(), `unknown role "crm:root"`)
}

func TestParseMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"200MiB", 200 << 20, true},
		{"1GiB", 1 << 30, true},
		{"512KiB", 512 << 10, true},
		{"2TiB", 2 << 40, true},
		{"1048576", 1 << 20, true},
		{"4096B", 4096, true},
		{"off", 0, true},
		{"", 0, false},
		{"0", 0, false},
		{"-5MiB", 0, false},
		{"200MB", 0, false},
		{"1.5GiB", 0, false},
		{"MiB", 0, false},
		{"9999999999TiB", 0, false},
	} {
		got, err := parseMemoryLimit(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
