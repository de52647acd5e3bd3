package tbot

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tbot/destination"
	"github.com/keyport/keyport/internal/testenv/golden"
	"github.com/keyport/keyport/internal/tlsca"
)

// testIdentity issues a real certificate from a throwaway CA, as GenerateBotCerts would.
func testIdentity(t *testing.T) *identityfile.Identity {
	t.Helper()
	now := time.Now()
	ca, err := tlsca.NewCA("keyport.example.com", "user", tlsca.AlgECDSAP256, clock.Rand, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.Issue(clock.Rand, now, tlsca.CertRequest{PublicKey: key.Public(), NotAfter: now.Add(time.Hour),
		Identity: tlsca.Identity{Username: "bot-example", Roles: []string{"bot-example"}, BotName: "example", BotInstanceID: "i-1", Generation: 1}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := identityFromCerts(key, &pb.Certs{TlsCertPem: certPEM, HostCaPems: [][]byte{ca.CertPEM}, UserCaPems: [][]byte{ca.CertPEM}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestKubeconfigGolden renders the kubeconfig of each output shape through the output
// code itself (real directory destination, the running executable), then normalises what
// differs between machines and runs: the tbot path, the directory and the PEM data.
func TestKubeconfigGolden(t *testing.T) {
	id := testIdentity(t)
	cur := &Current{Identity: id, ClusterName: "keyport.example.com", ProxyAddr: "keyport.example.com:3080"}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	two := []kubeContext{{Name: "keyport.example.com-prod-a", KubeCluster: "prod-a"}, {Name: "keyport.example.com-prod-b", KubeCluster: "prod-b"}}
	tests := []struct {
		golden   string
		out      config.Output
		contexts []kubeContext
		memory   bool
	}{
		{golden: "kubeconfig-exec.golden.yaml", out: config.Output{Type: config.OutputKubernetes, KubernetesCluster: "example-k8s-cluster"}},
		{golden: "kubeconfig-embedded.golden.yaml", out: config.Output{Type: config.OutputKubernetes, KubernetesCluster: "example-k8s-cluster", DisableExecPlugin: true}},
		{golden: "kubeconfig-memory.golden.yaml", out: config.Output{Type: config.OutputKubernetes, KubernetesCluster: "example-k8s-cluster"}, memory: true},
		{golden: "kubeconfig-v2.golden.yaml", out: config.Output{Type: config.OutputKubernetesV2}, contexts: two},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			dir := t.TempDir()
			var dest destination.Destination = destination.NewMemory()
			if !tt.memory {
				d, err := destination.NewDirectory(dir, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				dest = d
			}
			b := &Bot{cfg: &config.Config{}, opts: Options{}, rand: clock.Rand}
			o := newOutputService(b, &tt.out, dest)
			contexts := tt.contexts
			if contexts == nil {
				contexts = []kubeContext{{Name: cur.ClusterName + "-" + tt.out.KubernetesCluster, KubeCluster: tt.out.KubernetesCluster}}
			}
			files, err := o.files(cur, id, contexts)
			if err != nil {
				t.Fatal(err)
			}
			wantFiles := "identity key keyport-host-ca.crt kubeconfig.yaml tlscert"
			if got := sortedKeys(files); got != wantFiles {
				t.Errorf("files = %s, want %s", got, wantFiles)
			}
			keyPEM, _ := tlsca.EncodeKeyPEM(id.Key)
			got := strings.NewReplacer(
				exe, "/TBOT",
				dir, "/DEST",
				base64.StdEncoding.EncodeToString(id.CertPEM), "CERT-DATA",
				base64.StdEncoding.EncodeToString(keyPEM), "KEY-DATA",
				base64.StdEncoding.EncodeToString(id.HostCAs[0]), "HOST-CA-DATA",
			).Replace(string(files[FileKubeconfig]))
			golden.Check(t, filepath.Join("testdata", tt.golden), []byte(got))
		})
	}
}

func TestOutputFiles(t *testing.T) {
	id := testIdentity(t)
	cur := &Current{Identity: id, ClusterName: "keyport.example.com", ProxyAddr: "keyport.example.com:3080"}
	b := &Bot{cfg: &config.Config{}, rand: clock.Rand}

	// identity: no kubeconfig.
	o := newOutputService(b, &config.Output{Type: config.OutputIdentity}, destination.NewMemory())
	files, err := o.files(cur, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedKeys(files); got != "identity key keyport-host-ca.crt tlscert" {
		t.Errorf("identity output files = %s", got)
	}
	back, err := identityfile.Decode("identity", files[FileIdentity])
	if err != nil || string(back.CertPEM) != string(id.CertPEM) || len(back.HostCAs) != 1 || len(back.UserCAs) != 1 {
		t.Fatalf("identity file does not round-trip: %v", err)
	}

	// kubernetes_secret: the Secret keys SPEC section 9 names, credentials embedded.
	o = newOutputService(b, &config.Output{Type: config.OutputKubernetes, KubernetesCluster: "c"}, destination.NewKubeSecret("keyport-kube", "ns", nil))
	files, err = o.files(cur, id, []kubeContext{{Name: "keyport.example.com-c", KubeCluster: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := sortedKeys(files); got != "key kubeconfig.yaml tlscacerts tlscert" {
		t.Errorf("secret output files = %s", got)
	}
	if !strings.Contains(string(files[FileKubeconfig]), "client-certificate-data") {
		t.Error("secret kubeconfig does not embed the certificate")
	}
}

func TestSelectorMatches(t *testing.T) {
	kc := &pb.KubeCluster{Name: "prod-a", Labels: map[string]string{"env": "prod", "region": "eu"}}
	tests := []struct {
		sel  config.Selector
		want bool
	}{
		{config.Selector{Name: "prod-a"}, true},
		{config.Selector{Name: "prod"}, false},
		{config.Selector{Labels: map[string]string{"env": "prod"}}, true},
		{config.Selector{Labels: map[string]string{"env": "prod", "region": "eu"}}, true},
		{config.Selector{Labels: map[string]string{"env": "prod", "region": "us"}}, false},
		{config.Selector{Labels: map[string]string{"tier": ""}}, false},
		{config.Selector{}, false},
	}
	for _, tt := range tests {
		if got := selectorMatches(tt.sel, kc); got != tt.want {
			t.Errorf("selectorMatches(%+v) = %v, want %v", tt.sel, got, tt.want)
		}
	}
}

func sortedKeys(m map[string][]byte) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}
