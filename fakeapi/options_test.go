package fakeapi

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOptionsDefaults(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	defer s.Close()
	o := s.Options()
	checks := []struct {
		name      string
		got, want any
	}{
		{"Realm", o.Realm, "public"},
		{"Username", o.Username, "demo"},
		{"Password", o.Password, "demo"},
		{"APIKeys", strings.Join(o.APIKeys, ","), "demo-key"},
		{"Scopes", strings.Join(o.Scopes, " "), "capturing_read capturing_write profile email"},
		{"AccessTTL", o.AccessTTL, 300 * time.Second},
		{"RefreshTTL", o.RefreshTTL, 1800 * time.Second},
		{"SessionMax", o.SessionMax, 10 * time.Hour},
		{"MaxUploadBytes", o.MaxUploadBytes, int64(100_000_000)},
		{"ProcessingDelay", o.ProcessingDelay, time.Duration(0)},
		{"MaxPagesPerDocument", o.MaxPagesPerDocument, 100},
		{"LockoutFailures", o.LockoutFailures, 5},
		{"LockoutWindow", o.LockoutWindow, 60 * time.Second},
		{"LockoutDuration", o.LockoutDuration, 60 * time.Second},
		{"PagesPerSecond", o.PagesPerSecond, 0},
		{"Clock set", o.Clock != nil, true},
		{"Seed chosen", o.Seed != 0, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLockoutDisabled(t *testing.T) {
	t.Parallel()
	e := setup(t, Options{LockoutFailures: -1})
	for range 10 {
		e.postToken("?realm=public", passwordForm("demo", "wrong", ""))
	}
	wantStatus(t, "right password after 10 failures with lockout off", e.postToken("?realm=public", passwordForm("demo", "demo", "")), 200)
}

func TestBindFlags(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		var o Options
		fs := flag.NewFlagSet("fake-api", flag.ContinueOnError)
		BindFlags(fs, &o)
		if err := fs.Parse(nil); err != nil {
			t.Fatal(err)
		}
		if o.Realm != "public" || !slices.Equal(o.APIKeys, []string{"demo-key"}) || o.AccessTTL != 300*time.Second || o.MaxUploadBytes != 100_000_000 {
			t.Errorf("options with no flags: got %+v, want the defaults", o)
		}
		var help bytes.Buffer
		fs.SetOutput(&help)
		fs.PrintDefaults()
		for _, want := range []string{`-realm string`, `(default "public")`, `(default demo-key)`, `(default 5m0s)`, `(default 100000000)`, `-kill-sessions-every`, `-seed`} {
			if !strings.Contains(help.String(), want) {
				t.Errorf("help lacks %q:\n%s", want, help.String())
			}
		}
	})
	t.Run("every flag reaches its option", func(t *testing.T) {
		t.Parallel()
		var o Options
		fs := flag.NewFlagSet("fake-api", flag.ContinueOnError)
		BindFlags(fs, &o)
		args := []string{
			"--realm", "acme", "--username", "u", "--password", "p",
			"--api-key", "a,b", "--api-key", "c", "--scopes", "capturing_read,capturing_write",
			"--access-ttl", "1m", "--refresh-ttl", "2m", "--session-max", "1h",
			"--max-upload-size", "1000", "--processing-delay", "3s",
			"--pages-per-second", "10", "--pages-per-minute", "100", "--pages-per-hour", "1000",
			"--max-pages-per-document", "200", "--lockout-failures", "3", "--lockout-window", "5s", "--lockout-duration", "15m",
			"--latency", "20ms", "--server-error-rate", "0.1", "--rate-limit-rate", "0.2", "--drop-rate", "0.3",
			"--lose-refresh-rate", "0.4", "--kill-sessions-every", "5m", "--quota-exhausted", "--seed", "7",
		}
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		want := Options{
			Realm: "acme", Username: "u", Password: "p", APIKeys: []string{"a", "b", "c"},
			Scopes: []string{"capturing_read", "capturing_write"}, AccessTTL: time.Minute, RefreshTTL: 2 * time.Minute,
			SessionMax: time.Hour, MaxUploadBytes: 1000, ProcessingDelay: 3 * time.Second,
			PagesPerSecond: 10, PagesPerMinute: 100, PagesPerHour: 1000, MaxPagesPerDocument: 200,
			LockoutFailures: 3, LockoutWindow: 5 * time.Second, LockoutDuration: 15 * time.Minute,
			Faults: Faults{Latency: 20 * time.Millisecond, ServerErrorRate: 0.1, RateLimitRate: 0.2, DropRate: 0.3,
				LoseRefreshRate: 0.4, KillSessionsEvery: 5 * time.Minute, QuotaExhausted: true},
			Seed: 7,
		}
		if !slices.Equal(o.APIKeys, want.APIKeys) || !slices.Equal(o.Scopes, want.Scopes) {
			t.Errorf("lists: got keys %v scopes %v, want %v and %v", o.APIKeys, o.Scopes, want.APIKeys, want.Scopes)
		}
		o.APIKeys, o.Scopes, want.APIKeys, want.Scopes = nil, nil, nil, nil
		o.Clock = nil
		if o.Faults != want.Faults || o.Realm != want.Realm || o.Username != want.Username || o.Password != want.Password ||
			o.AccessTTL != want.AccessTTL || o.RefreshTTL != want.RefreshTTL || o.SessionMax != want.SessionMax ||
			o.MaxUploadBytes != want.MaxUploadBytes || o.ProcessingDelay != want.ProcessingDelay ||
			o.PagesPerSecond != want.PagesPerSecond || o.PagesPerMinute != want.PagesPerMinute || o.PagesPerHour != want.PagesPerHour ||
			o.MaxPagesPerDocument != want.MaxPagesPerDocument || o.LockoutFailures != want.LockoutFailures ||
			o.LockoutWindow != want.LockoutWindow || o.LockoutDuration != want.LockoutDuration || o.Seed != want.Seed {
			t.Errorf("got  %+v\nwant %+v", o, want)
		}
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc     string
		opts     Options
		wantName string // "" means valid
	}{
		{"zero options", Options{}, ""},
		{"a full set", Options{PagesPerSecond: 10, Faults: Faults{DropRate: 1, Latency: time.Second}}, ""},
		{"rate above 1", Options{Faults: Faults{ServerErrorRate: 1.5}}, "ServerErrorRate"},
		{"negative rate", Options{Faults: Faults{LoseRefreshRate: -0.1}}, "LoseRefreshRate"},
		{"negative latency", Options{Faults: Faults{Latency: -time.Second}}, "Latency"},
		{"negative session max", Options{SessionMax: -time.Hour}, "SessionMax"},
		{"negative page limit", Options{PagesPerMinute: -1}, "PagesPerMinute"},
		{"empty API key", Options{APIKeys: []string{"a", ""}}, "APIKeys"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			err := c.opts.Validate()
			if c.wantName == "" {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), c.wantName) {
				t.Errorf("got %v, want an ErrInvalidOptions naming %s", err, c.wantName)
			}
		})
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	s := New(Options{Faults: Faults{KillSessionsEvery: time.Millisecond}})
	s.Close()
	s.Close()
	s.SetFaults(Faults{KillSessionsEvery: time.Millisecond}) // must not restart the ticker
	s.Close()
}
