package bench

import (
	"bufio"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The load process's protocol: warm-up, then one reply per request line, with as many
// GETs as asked for, over the kubeconfig's server.
func TestLoadMainProtocol(t *testing.T) {
	var gets atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != podPath {
			http.NotFound(w, r)
			return
		}
		gets.Add(1)
		_, _ = io.WriteString(w, `{"kind":"Pod"}`)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := writeServerOnly(kubeconfig, bareReply{URL: srv.URL, ServerName: serverName(srv.Certificate()),
		CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})}); err != nil {
		t.Fatal(err)
	}
	if _, err := clientcmd.LoadFromFile(kubeconfig); err != nil {
		t.Fatal(err)
	}

	in := strings.NewReader(`{"path":"p","requests":300}` + "\n" + `{"path":"nope","requests":1}` + "\n" + `not json` + "\n")
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- loadMain([]string{"-workers", "4", "p=" + kubeconfig}, in, pw, io.Discard)
		_ = pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	sc.Buffer(nil, 1<<20)
	var replies []loadReply
	for sc.Scan() {
		var r loadReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("reply %q: %v", sc.Text(), err)
		}
		replies = append(replies, r)
	}
	if c := <-code; c != 0 {
		t.Fatalf("loadMain exited %d", c)
	}
	if len(replies) != 4 || !replies[0].Ready {
		t.Fatalf("replies %+v, want ready then three", replies)
	}
	if r := replies[1]; r.Error != "" || r.Requests != 300 || len(r.Latencies) != 300 || r.Elapsed <= 0 {
		t.Errorf("round reply: %d requests, %d latencies, elapsed %v, error %q", r.Requests, len(r.Latencies), r.Elapsed, r.Error)
	}
	if !strings.Contains(replies[2].Error, `no path "nope"`) || !strings.Contains(replies[3].Error, "bad request") {
		t.Errorf("error replies: %q, %q", replies[2].Error, replies[3].Error)
	}
	if n := gets.Load(); n != 200+300 { // the warm-up's 200, then the round's
		t.Errorf("server saw %d GETs, want 500", n)
	}
}

// writeImpersonating keeps the admin's credentials and adds kubeconfig's as and
// as-groups.
func TestWriteImpersonating(t *testing.T) {
	dir := t.TempDir()
	admin := filepath.Join(dir, "admin")
	c := clientcmdapi.NewConfig()
	c.Clusters["k"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:6443"}
	c.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: "t"}
	c.Contexts["k"] = &clientcmdapi.Context{Cluster: "k", AuthInfo: "admin"}
	c.CurrentContext = "k"
	if err := clientcmd.WriteToFile(*c, admin); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "direct")
	if err := writeImpersonating(admin, dst, "bot-bench", []string{"editor", "system:authenticated"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", dst)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BearerToken != "t" || cfg.Impersonate.UserName != "bot-bench" || strings.Join(cfg.Impersonate.Groups, ",") != "editor,system:authenticated" {
		t.Errorf("config: token %q, impersonate %+v", cfg.BearerToken, cfg.Impersonate)
	}
}
