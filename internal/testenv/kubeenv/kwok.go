package kubeenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keyport/keyport/internal/testenv/tools"
)

const (
	// PodLogText is the first log line of every container of every kwok pod.
	PodLogText = "hello from a kwok pod"
	// PortForwardResponse is the body of every HTTP response behind a port-forward to
	// a kwok pod.
	PortForwardResponse = "hello through port-forward\n"
	// PodImage is the image CreatePod puts in its pods. kwok never pulls it.
	PodImage = "registry.k8s.io/pause:3.10"
)

// kwokStages are the stage sets (copied from sigs.k8s.io/kwok's kustomize/stage by
// `make kube-tools`) that make a Node Ready, keep it Ready, and move pods to Running
// and through deletion without delays.
var kwokStages = []string{"node-fast", "node-heartbeat", "pod-fast"}

// kwokConfig is kwok's configuration. Options: the debugging handlers are what serve
// exec/port-forward/logs; the parallelism knobs must be non-zero or nothing is played.
// ClusterExec runs `kubectl exec` commands on this machine, as the test's user, in
// directory %[1]q; ClusterPortForward sends every forwarded port of every pod to
// 127.0.0.1:%[3]d; ClusterLogs serves file %[2]q as the log of every container, and
// ClusterAttach streams the lines appended to it after an attach starts. Stage
// pod-ephemeral-running marks a running pod's ephemeral containers running (the first
// `kubectl debug` of a pod), so that kubectl debug -it attaches to one.
// Paths are quoted with %q, which YAML reads as a double-quoted string.
const kwokConfig = `apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
metadata:
  name: kubeenv
options:
  enableDebuggingHandlers: true
  enableProfilingHandler: false
  podPlayStageParallelism: 4
  nodePlayStageParallelism: 2
  nodeLeaseParallelism: 2
  podsOnNodeSyncParallelism: 2
  enablePodsOnNodeSyncListPager: true
  enablePodsOnNodeSyncStreamWatch: false
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: local
spec:
  execs:
  - local:
      workDir: %[1]q
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: local
spec:
  forwards:
  - target:
      address: 127.0.0.1
      port: %[3]d
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: local
spec:
  logs:
  - logsFile: %[2]q
    follow: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterAttach
metadata:
  name: local
spec:
  attaches:
  - logsFile: %[2]q
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ephemeral-running
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.spec.ephemeralContainers'
      operator: 'Exists'
    - key: '.status.ephemeralContainerStatuses'
      operator: 'DoesNotExist'
  next:
    statusTemplate: |
      {{ $now := Now }}
      ephemeralContainerStatuses:
      {{ range .spec.ephemeralContainers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
`

func (e *Env) startKwok(ctx context.Context, bin string) error {
	kdir := filepath.Join(e.Dir, "kwok")
	execDir := filepath.Join(kdir, "exec")
	if err := os.MkdirAll(execDir, 0o700); err != nil {
		return err
	}
	var stageArgs []string
	for _, s := range kwokStages {
		d := filepath.Join(tools.CacheDir(), "kwok-stages", s)
		if _, err := os.Stat(filepath.Join(d, "kustomization.yaml")); err != nil {
			return fmt.Errorf("kwok stage files %s missing (%w): install them with `make kube-tools`", d, err)
		}
		stageArgs = append(stageArgs, "--config="+d)
	}

	// The port-forward target lives in this process: it needs no binary and lets a test
	// check the bytes that came back through apiserver, kwok and any proxy in between.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	e.pfServer = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, PortForwardResponse)
		}),
	}
	go func() { _ = e.pfServer.Serve(ln) }()
	e.PortForwardAddr = ln.Addr().String()
	pfPort := ln.Addr().(*net.TCPAddr).Port

	e.PodLogPath = filepath.Join(kdir, "pod.log")
	if err := os.WriteFile(e.PodLogPath, []byte(criLogLines(time.Now(), PodLogText)), 0o600); err != nil {
		return err
	}
	cfgPath := filepath.Join(kdir, "kwok.yaml")
	cfg := fmt.Sprintf(kwokConfig, execDir, e.PodLogPath, pfPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}

	// The Node exists before kwok starts so its first list already finds it.
	if err := e.createNode(ctx); err != nil {
		return err
	}
	var nodePort int
	_, err = e.launch(ctx, component{
		crashRetry: true,
		name:       "kwok",
		bin:        bin,
		ports:      1,
		env: []string{
			// kwok also loads $KWOK_WORKDIR/kwok.yaml when it exists; point it at our
			// own directory so a developer's ~/.kwok cannot change the test cluster.
			"KWOK_WORKDIR=" + filepath.Join(kdir, "home"),
		},
		args: func(p []int) []string {
			nodePort = p[0]
			return append([]string{
				"--kubeconfig=" + e.KubeconfigPath,
				"--config=" + cfgPath,
				"--manage-all-nodes=true",
				"--node-ip=127.0.0.1",
				"--node-port=" + itoa(p[0]),
				"--server-address=127.0.0.1:" + itoa(p[0]),
				"--tls-cert-file=" + e.pki.servingCertFile,
				"--tls-private-key-file=" + e.pki.servingKeyFile,
				"--cidr=" + podCIDR,
			}, stageArgs...)
		},
		ready: func(ctx context.Context, p []int) error {
			_, err := e.get(ctx, "https://127.0.0.1:"+itoa(p[0])+"/healthz")
			return err
		},
	})
	if err != nil {
		return err
	}
	// Ready, and advertising kwok's port: the apiserver dials that port for exec,
	// port-forward and logs.
	err = waitReady(ctx, readyTimeout, "node "+NodeName, e.processes(), func(ctx context.Context) error {
		n, err := e.Clientset.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if int(n.Status.DaemonEndpoints.KubeletEndpoint.Port) != nodePort {
			return fmt.Errorf("%w: kubelet port %d", errNotReady, n.Status.DaemonEndpoints.KubeletEndpoint.Port)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("%w: node not Ready", errNotReady)
	})
	if err != nil {
		return err
	}
	e.NodeName = NodeName
	return nil
}

func (e *Env) createNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: NodeName,
			Labels: map[string]string{
				"kubernetes.io/hostname": NodeName,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
			// The annotation kwok's own docs put on fake nodes; harmless with
			// --manage-all-nodes and it tells a reader of `kubectl get node -o yaml`.
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		},
	}
	_, err := e.Clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// CreatePod creates a pod bound to the kwok Node (there is no scheduler) and waits,
// bounded, until it is Running. It creates the namespace when missing.
func (e *Env) CreatePod(ctx context.Context, namespace, name string) error {
	if e.NodeName == "" {
		return errors.New("kubeenv: CreatePod needs Options.Kwok")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := e.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	if err := e.waitServiceAccount(ctx, namespace); err != nil {
		return err
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName: e.NodeName,
			Containers: []corev1.Container{{
				Name:  "app",
				Image: PodImage,
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			}},
		},
	}
	if _, err := e.Clientset.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create pod %s/%s: %w", namespace, name, err)
	}
	return waitReady(ctx, readyTimeout, "pod "+namespace+"/"+name, e.processes(), func(ctx context.Context) error {
		p, err := e.Clientset.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("%w: phase %q", errNotReady, p.Status.Phase)
		}
		return nil
	})
}

// AppendPodLog appends lines (split on newlines) to the log every kwok container serves,
// in CRI format, so `kubectl logs -f` sees them arrive.
func (e *Env) AppendPodLog(text string) error {
	if e.PodLogPath == "" {
		return errors.New("kubeenv: AppendPodLog needs Options.Kwok")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	f, err := os.OpenFile(e.PodLogPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, criLogLines(time.Now(), text)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// criLogLines formats text the way container runtimes write container logs and
// kubelet (here kwok) parses them: "<RFC3339Nano> <stream> <F|P> <line>".
func criLogLines(t time.Time, text string) string {
	var b strings.Builder
	for line := range strings.SplitSeq(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(&b, "%s stdout F %s\n", t.UTC().Format(time.RFC3339Nano), line)
	}
	return b.String()
}

// waitAggregatedRoles waits until the clusterrole-aggregation controller has filled the
// built-in aggregated ClusterRoles.
func (e *Env) waitAggregatedRoles(ctx context.Context) error {
	for _, name := range []string{"view", "edit", "admin"} {
		err := waitReady(ctx, readyTimeout, "aggregated ClusterRole "+name, e.processes(), func(ctx context.Context) error {
			r, err := e.Clientset.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(r.Rules) == 0 {
				return fmt.Errorf("%w: no rules yet", errNotReady)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (e *Env) waitServiceAccount(ctx context.Context, namespace string) error {
	return waitReady(ctx, readyTimeout, "ServiceAccount "+namespace+"/default", e.processes(), func(ctx context.Context) error {
		_, err := e.Clientset.CoreV1().ServiceAccounts(namespace).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}
