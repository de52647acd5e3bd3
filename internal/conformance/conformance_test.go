package conformance

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadJUnit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junit_01.xml")
	data := `<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="Kubernetes e2e suite" tests="4">
  <testcase name="[SynchronizedBeforeSuite]" status="passed"></testcase>
  <testcase name="[It] [sig-api-machinery] Watchers ok [Conformance]" status="passed" time="2.5"></testcase>
  <testcase name="[It] [sig-api-machinery] Discovery broken [Conformance]" status="failed"><failure message="x">x</failure></testcase>
  <testcase name="[It] [sig-apps] other" status="skipped"><skipped message="skipped"></skipped></testcase>
</testsuite></testsuites>`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readJUnit(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Result{
		"[It] [sig-api-machinery] Watchers ok [Conformance]":      Passed,
		"[It] [sig-api-machinery] Discovery broken [Conformance]": Failed,
		"[It] [sig-apps] other":                                   Skipped,
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k].Result != v {
			t.Errorf("%s: %s, want %s", k, got[k].Result, v)
		}
	}
	if d := got["[It] [sig-api-machinery] Watchers ok [Conformance]"].Took; d != 2500*time.Millisecond {
		t.Errorf("took %s, want 2.5s", d)
	}
	if _, err := readJUnit(filepath.Join(t.TempDir(), "missing.xml")); err == nil {
		t.Fatal("a missing report is no error")
	}
}
