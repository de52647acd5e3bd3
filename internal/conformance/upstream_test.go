package conformance

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/testenv/tools"
)

// TestUpstreamConformance runs CISelection with the upstream e2e.test binary, directly
// and through Keyport: every test must pass both ways.
func TestUpstreamConformance(t *testing.T) {
	e2e := tools.Path(t, "e2e.test")
	kubectl := tools.Path(t, "kubectl")
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/keyport/keyport/cmd/tbot")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building tbot: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var log strings.Builder
	rep, err := Run(ctx, Options{E2E: e2e, Tbot: filepath.Join(dir, "tbot"), Kubectl: kubectl,
		Focus: FocusOn(CISelection), Out: &log, Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var report strings.Builder
	rep.Print(&report, true)
	t.Logf("upstream conformance selection:\n%s", report.String())
	for _, name := range CISelection {
		full := "[It] " + name
		if rep.Direct[full] != Passed {
			t.Errorf("directly: %s: %s (the test bed broke, or the name changed upstream)", name, rep.Direct[full])
		}
		if rep.Keyport[full] != Passed {
			t.Errorf("through Keyport: %s: %s", name, rep.Keyport[full])
		}
	}
}
