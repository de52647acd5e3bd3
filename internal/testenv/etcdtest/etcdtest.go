// Package etcdtest starts a real, single-member etcd server for tests. The etcd backend is
// only trusted when checked against the server itself, so tests run the binary found by
// package tools rather than a fake.
package etcdtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/testenv/proc"
	"github.com/keyport/keyport/internal/testenv/tools"
)

// startTimeout bounds how long one etcd start may take to report healthy.
const startTimeout = 60 * time.Second

// attempts is how often Start retries when a port it picked was taken in the meantime.
const attempts = 5

// Start runs an etcd server on free 127.0.0.1 ports with its data in a temporary
// directory, waits until it reports healthy, and stops it when t ends. It returns the
// client endpoint URL.
func Start(t testing.TB) string {
	t.Helper()
	bin := tools.Path(t, "etcd")
	var lastErr error
	for range attempts {
		ep, err := start(t, bin)
		if err == nil {
			return ep
		}
		lastErr = err
		if !errors.Is(err, errExited) {
			break // not a port race; retrying will not help
		}
	}
	t.Fatalf("starting etcd: %v", lastErr)
	return ""
}

// errExited marks a server that quit before becoming healthy, which is what a port
// taken between picking it and etcd binding it looks like.
var errExited = errors.New("etcd exited before becoming healthy")

func start(t testing.TB, bin string) (string, error) {
	ports, err := freeport.Ports(2)
	if err != nil {
		return "", err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	cmd := exec.Command(bin,
		"--name=test",
		"--data-dir="+t.TempDir(),
		"--listen-client-urls="+client,
		"--advertise-client-urls="+client,
		"--listen-peer-urls="+peer,
		"--initial-advertise-peer-urls="+peer,
		"--initial-cluster=test="+peer,
		"--initial-cluster-state=new",
		"--logger=zap",
		"--log-level=error",
		"--log-outputs=stderr",
	)
	out := &proc.Buffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("running %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Kill()
		if err := <-exited; err != nil {
			_ = err // a killed etcd exits with a signal status; nothing to report
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if healthy(ctx, client) {
			break
		}
		select {
		case err := <-exited:
			return "", fmt.Errorf("%w (%w): %s", errExited, err, out.String())
		case <-ctx.Done():
			stop()
			return "", fmt.Errorf("etcd at %s not healthy within %v: %s", client, startTimeout, out.String())
		case <-tick.C:
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() && out.Len() > 0 {
			t.Logf("etcd output:\n%s", out.String())
		}
	})
	return client, nil
}

func healthy(ctx context.Context, endpoint string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
	}
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&h) == nil && h.Health == "true"
}
