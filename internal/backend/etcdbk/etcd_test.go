package etcdbk

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/backend/backendtest"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/testenv/etcdtest"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func open(t testing.TB, cfg Config) *Backend {
	t.Helper()
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestConformance runs the suite against one etcd server; each subtest gets its own
// key prefix, which is the isolation the backend promises.
func TestConformance(t *testing.T) {
	endpoint := etcdtest.Start(t)
	backendtest.RunSuite(t, func(t *testing.T) backendtest.Harness {
		clk := clock.NewFake(epoch)
		b := open(t, Config{Endpoints: []string{endpoint}, Prefix: "/conformance/" + t.Name(), Clock: clk})
		return backendtest.Harness{
			Backend: b,
			Clock:   clk,
			// Leases expire on the server's wall clock, at least ~2s after grant.
			ExpiryWait: 15 * time.Second,
			Compact: func(ctx context.Context, rev int64) error {
				_, err := b.client.Compact(ctx, rev)
				return err
			},
			// etcd's default --max-request-bytes is 1.5 MiB, so 1 MiB values fit and
			// 10 MB ones would be rejected by the server.
			MaxValueSize: 1 << 20,
		}
	})
}

func TestConfigCheckAndSetDefaults(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		wantErr    bool
		wantPrefix string
	}{
		{name: "endpoints required", cfg: Config{}, wantErr: true},
		{name: "default prefix", cfg: Config{Endpoints: []string{"http://e:2379"}}, wantPrefix: DefaultPrefix},
		{name: "slash appended", cfg: Config{Endpoints: []string{"http://e:2379"}, Prefix: "/kp"}, wantPrefix: "/kp/"},
		{name: "slash kept", cfg: Config{Endpoints: []string{"http://e:2379"}, Prefix: "/kp/"}, wantPrefix: "/kp/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			err := cfg.CheckAndSetDefaults()
			if tt.wantErr {
				if !errs.IsBadParameter(err) {
					t.Fatalf("err = %v, want bad parameter", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Prefix != tt.wantPrefix || cfg.Clock == nil || cfg.Logger == nil || cfg.DialTimeout != DefaultDialTimeout {
				t.Fatalf("after defaults: %+v", cfg)
			}
		})
	}
}

func TestEnvelope(t *testing.T) {
	exp := time.Unix(0, 1767225600123456789)
	tests := []struct {
		name    string
		value   []byte
		expires time.Time
	}{
		{"no expiry", []byte("v"), time.Time{}},
		{"expiry to the nanosecond", []byte("v"), exp},
		{"empty value", nil, time.Time{}},
		{"binary value", []byte{0, 0xff, 1}, exp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			value, expires, err := decode([]byte(encode(tt.value, tt.expires)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(value, tt.value) || !expires.Equal(tt.expires) {
				t.Fatalf("round trip = %q %v, want %q %v", value, expires, tt.value, tt.expires)
			}
		})
	}
	for _, raw := range [][]byte{nil, []byte("plain"), append([]byte{2}, make([]byte, 8)...)} {
		if _, _, err := decode(raw); !errors.Is(err, errEnvelope) {
			t.Fatalf("decode(%q) err = %v, want errEnvelope", raw, err)
		}
	}
}

func TestNewFailsFastWithoutServer(t *testing.T) {
	start := time.Now()
	_, err := New(t.Context(), Config{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: time.Second})
	if err == nil {
		t.Fatal("New succeeded without a server")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("New took %v to fail", d)
	}
}

// TestServer covers what the conformance suite cannot see: how keys sit in etcd.
func TestServer(t *testing.T) {
	endpoint := etcdtest.Start(t)

	t.Run("prefixes isolate backends", func(t *testing.T) {
		a := open(t, Config{Endpoints: []string{endpoint}, Prefix: "/iso/a"})
		b := open(t, Config{Endpoints: []string{endpoint}, Prefix: "/iso/ab"})
		ctx := t.Context()
		if _, err := a.Put(ctx, backend.Item{Key: []byte("k"), Value: []byte("a")}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctx, []byte("k")); !errs.IsNotFound(err) {
			t.Fatalf("b sees a's key: %v", err)
		}
		if err := b.DeleteRange(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Get(ctx, []byte("k")); err != nil {
			t.Fatalf("b's DeleteRange removed a's key: %v", err)
		}
		raw, err := a.client.Get(ctx, "/iso/a/k")
		if err != nil || len(raw.Kvs) != 1 {
			t.Fatalf("key not stored under the prefix: %v %v", raw, err)
		}
	})

	t.Run("replaced leases are revoked", func(t *testing.T) {
		clk := clock.NewFake(epoch)
		b := open(t, Config{Endpoints: []string{endpoint}, Prefix: "/lease", Clock: clk})
		ctx := t.Context()
		if _, err := b.Put(ctx, backend.Item{Key: []byte("k"), Value: []byte("v"), Expires: clk.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		raw, err := b.client.Get(ctx, "/lease/k")
		if err != nil || len(raw.Kvs) != 1 || raw.Kvs[0].Lease == 0 {
			t.Fatalf("expiring item has no lease: %v %v", raw, err)
		}
		lease := clientv3.LeaseID(raw.Kvs[0].Lease)
		if ttl, err := b.client.TimeToLive(ctx, lease); err != nil || ttl.TTL <= 3500 {
			t.Fatalf("lease TTL = %v, %v; want about an hour", ttl, err)
		}
		if _, err := b.Put(ctx, backend.Item{Key: []byte("k"), Value: []byte("v2")}); err != nil {
			t.Fatal(err)
		}
		// Revocation runs in the background; poll with a deadline.
		deadline := time.Now().Add(10 * time.Second)
		for {
			ttl, err := b.client.TimeToLive(ctx, lease)
			if err != nil {
				t.Fatal(err)
			}
			if ttl.TTL == -1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replaced lease still has TTL %d", ttl.TTL)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("foreign values are errors, not garbage", func(t *testing.T) {
		b := open(t, Config{Endpoints: []string{endpoint}, Prefix: "/foreign"})
		if _, err := b.client.Put(t.Context(), "/foreign/k", "not an envelope"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(t.Context(), []byte("k")); !errors.Is(err, errEnvelope) {
			t.Fatalf("Get of a foreign value: err = %v", err)
		}
	})
}

func benchBackend(b *testing.B) *Backend {
	return open(b, Config{Endpoints: []string{etcdtest.Start(b)}, Prefix: "/bench"})
}

func BenchmarkPut(b *testing.B) { backendtest.BenchmarkPut(b, benchBackend(b)) }
func BenchmarkGet(b *testing.B) { backendtest.BenchmarkGet(b, benchBackend(b)) }
func BenchmarkCAS(b *testing.B) { backendtest.BenchmarkCompareAndSwap(b, benchBackend(b)) }
