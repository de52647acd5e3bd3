package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/tools"
	"github.com/keyport/keyport/internal/tlsca"
)

// binDir holds the four binaries, built once per test run from this checkout.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyport-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/keyport", "./cmd/tctl", "./cmd/tsh", "./cmd/tbot")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building binaries: %v\n%s", err, out)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func scriptParams(t *testing.T, dir string) testscript.Params {
	return testscript.Params{
		Dir: dir,
		Setup: func(e *testscript.Env) error {
			e.Setenv("PATH", binDir+string(os.PathListSeparator)+tools.BinDir()+string(os.PathListSeparator)+os.Getenv("PATH"))
			e.Setenv("AUTH_ADDR", freeport.Addr(t))
			e.Setenv("WEB_ADDR", freeport.Addr(t))
			e.Setenv("DIAG_ADDR", freeport.Addr(t))
			e.Setenv("HOME", e.WorkDir)
			e.Setenv("KEYPORT_CACHE", tools.CacheDir())
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitready":          cmdWaitReady,
			"hostcapin":          cmdHostCAPin,
			"envsubst":           cmdEnvsubst,
			"kubeenv":            cmdKubeenv,
			"setenv-from-stdout": cmdSetenvFromStdout,
			"clientgo-list-pods": cmdClientGoListPods,
			"invite":             cmdInvite,
			"totp":               cmdTOTP,
		},
	}
}

// cmdWaitReady waits (bounded) until a diag address answers /readyz.
func cmdWaitReady(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitready DIAG_ADDR")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+args[0]+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				if neg {
					ts.Fatalf("%s is ready", args[0])
				}
				return
			}
		}
		if time.Now().After(deadline) {
			if neg {
				return
			}
			ts.Fatalf("%s not ready after 30s: %v", args[0], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cmdHostCAPin sets an env var to the pin of the host CA held in an identity file.
func cmdHostCAPin(ts *testscript.TestScript, _ bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: hostcapin IDENTITY_FILE VAR")
	}
	id, err := identityfile.Read(ts.MkAbs(args[0]))
	ts.Check(err)
	if len(id.HostCAs) == 0 {
		ts.Fatalf("no host CA in %s", args[0])
	}
	ca, err := tlsca.ParseCertPEM(id.HostCAs[0])
	ts.Check(err)
	ts.Setenv(args[1], tlsca.Pin(ca))
}

func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams(t, "testdata/script"))
}

// cmdEnvsubst expands $VARS of the script's environment in files, in place: txtar
// files are literal, and configs need the ports picked at Setup.
func cmdEnvsubst(ts *testscript.TestScript, _ bool, args []string) {
	for _, f := range args {
		path := ts.MkAbs(f)
		data, err := os.ReadFile(path)
		ts.Check(err)
		out := os.Expand(string(data), func(k string) string { return ts.Getenv(k) })
		ts.Check(os.WriteFile(path, []byte(out), 0o600))
	}
}

// cmdKubeenv starts a real control plane with kwok and two running pods for the rest of
// the script, with an admin kubeconfig whose context is the given name, in
// $ADMIN_KUBECONFIG.
func cmdKubeenv(ts *testscript.TestScript, _ bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: kubeenv CONTEXT_NAME")
	}
	ctx := context.Background()
	env, err := kubeenv.StartProcess(ctx, kubeenv.Options{Kwok: true, ContextName: args[0], Dir: ts.MkAbs("kube")})
	ts.Check(err)
	ts.Defer(func() { _ = env.Stop() })
	for _, p := range [][2]string{{"default", "web-0"}, {"kube-system", "dns-0"}} {
		ts.Check(env.CreatePod(ctx, p[0], p[1]))
	}
	ts.Setenv("ADMIN_KUBECONFIG", env.KubeconfigPath)
}

// cmdSetenvFromStdout sets VAR to the first submatch of REGEXP in the last command's
// stdout (e.g. the token that tctl bots add prints).
func cmdSetenvFromStdout(ts *testscript.TestScript, _ bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: setenv-from-stdout VAR REGEXP")
	}
	m := regexp.MustCompile(args[1]).FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("%q not found in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}

// cmdClientGoListPods is "a small client-go program": it loads a kubeconfig the way
// every client-go tool does and lists pods in all namespaces, printing namespace/name.
func cmdClientGoListPods(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: clientgo-list-pods KUBECONFIG")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", ts.MkAbs(args[0]))
	ts.Check(err)
	cs, err := kubernetes.NewForConfig(cfg)
	ts.Check(err)
	pods, err := cs.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if neg {
		if err == nil {
			ts.Fatalf("listing pods succeeded")
		}
		return
	}
	ts.Check(err)
	for _, p := range pods.Items {
		fmt.Fprintf(ts.Stdout(), "%s/%s\n", p.Namespace, p.Name)
	}
}
