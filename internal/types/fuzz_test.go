package types

import (
	"os"
	"testing"

	"github.com/keyport/keyport/internal/errs"
)

// FuzzDecode feeds arbitrary bytes to Decode. Resource files come from users and, through
// `tctl create -`, from the network, so Decode must never panic, must fail only with a
// bad-parameter error and no resources, and whatever it accepts must survive
// encode/decode (YAML and storage JSON) unchanged.
func FuzzDecode(f *testing.F) {
	for _, file := range fixtures(f) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"kind: role\nversion: v7\nmetadata: {name: r}\nspec: {allow: {kubernetes_labels: {a: [b, '^c$']}}}\n",
		"kind: lock\nversion: v2\nmetadata: {name: l, description: \"a\\nb \"}\nspec: {target: {login: root}}\n",
		"kind: user\nversion: v2\nmetadata: {name: u, labels: {'k/v': '1'}}\nspec: {traits: {'x y': ['', ' ']}}\n",
		"kind: role\nversion: v7\nmetadata: &a {name: r}\nspec: *a\n",
		"---\n~\n---\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Decode("fuzz.yaml", data)
		if err != nil {
			if rs != nil {
				t.Fatalf("resources returned with error %v", err)
			}
			if !errs.IsBadParameter(err) {
				t.Fatalf("error is not bad parameter: %v", err)
			}
			return
		}
		assertRoundTrip(t, rs)
	})
}
