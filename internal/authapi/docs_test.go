package authapi

import (
	"os"
	"strings"
	"testing"
)

// TestDocsShowTheTable: docs/ARCHITECTURE.md shows the table as Markdown renders it, so
// the page a newcomer reads is the table the interceptor enforces.
func TestDocsShowTheTable(t *testing.T) {
	page, err := os.ReadFile("../../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := Markdown(); !strings.Contains(string(page), want) {
		t.Fatalf("docs/ARCHITECTURE.md does not hold the Auth API's table as it is; put this in its place:\n\n%s", want)
	}
}
