package destination

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/keyport/keyport/internal/errs"
)

// In-cluster service account files, as every pod has them.
const (
	saDir       = "/var/run/secrets/kubernetes.io/serviceaccount"
	saTokenFile = saDir + "/token"
	saCAFile    = saDir + "/ca.crt"
	saNSFile    = saDir + "/namespace"
)

// KubeSecret keeps the files as the data of one Kubernetes Secret in tbot's own
// namespace, for tbot running as a pod. It speaks to the API server with plain HTTP and
// the pod's service-account token rather than client-go's typed clients: one Secret needs
// three calls, and the typed clients would add megabytes and start-up time to every tbot.
type KubeSecret struct {
	Name      string
	Namespace string
	Labels    map[string]string

	// API, Client and Token reach the API server; empty means in-cluster defaults. Tests
	// point them at a test API server.
	API    string
	Client *http.Client
	Token  func() (string, error)

	once    sync.Once
	initErr error
}

// KubeAPI is how KubeSecret destinations reach an API server other than the pod's own:
// its base URL, a client that trusts it (and may present a client certificate), and an
// optional bearer token source. Production tbot never sets it — a kubernetes_secret
// destination is for tbot running in a pod — but tests point it at a real test API server.
type KubeAPI struct {
	URL    string
	Client *http.Client
	Token  func() (string, error)
}

// UseAPI points k at api instead of the in-cluster defaults.
func (k *KubeSecret) UseAPI(api *KubeAPI) {
	k.API, k.Client, k.Token = api.URL, api.Client, api.Token
	if k.Token == nil {
		k.Token = func() (string, error) { return "", nil }
	}
}

// NewKubeSecret returns a Secret destination; the connection is set up on first use.
func NewKubeSecret(name, namespace string, labels map[string]string) *KubeSecret {
	return &KubeSecret{Name: name, Namespace: namespace, Labels: labels}
}

func (k *KubeSecret) String() string {
	ns := k.Namespace
	if ns == "" {
		ns = "<pod namespace>"
	}
	return "kubernetes-secret://" + ns + "/" + k.Name
}

// init fills in the in-cluster defaults.
func (k *KubeSecret) init() error {
	k.once.Do(func() {
		if k.Namespace == "" {
			ns := os.Getenv("POD_NAMESPACE")
			if ns == "" {
				data, err := os.ReadFile(saNSFile)
				if err != nil {
					k.initErr = errs.BadParameterf("kubernetes_secret destination %q: no namespace given and tbot is not running in a pod (%s is missing)", k.Name, saNSFile)
					return
				}
				ns = strings.TrimSpace(string(data))
			}
			k.Namespace = ns
		}
		if k.API == "" {
			host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
			if host == "" || port == "" {
				k.initErr = errs.BadParameterf("kubernetes_secret destination %s: tbot is not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set)", k)
				return
			}
			k.API = "https://" + net.JoinHostPort(host, port)
		}
		if k.Client == nil {
			caPEM, err := os.ReadFile(saCAFile)
			if err != nil {
				k.initErr = fmt.Errorf("kubernetes_secret destination %s: reading the cluster CA: %w", k, err)
				return
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(caPEM)
			k.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		}
		if k.Token == nil {
			// Re-read on every call: the kubelet rotates projected tokens.
			k.Token = func() (string, error) {
				data, err := os.ReadFile(saTokenFile)
				return strings.TrimSpace(string(data)), err
			}
		}
	})
	return k.initErr
}

type secret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   secretMeta        `json:"metadata"`
	Type       string            `json:"type,omitempty"`
	Data       map[string][]byte `json:"data"`
}

type secretMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace"`
	Labels          map[string]string `json:"labels,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
}

func (k *KubeSecret) url(withName bool) string {
	u := k.API + "/api/v1/namespaces/" + url.PathEscape(k.Namespace) + "/secrets"
	if withName {
		u += "/" + url.PathEscape(k.Name)
	}
	return u
}

func (k *KubeSecret) do(ctx context.Context, method, u string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	tok, err := k.Token()
	if err != nil {
		return 0, nil, fmt.Errorf("reading the service account token: %w", err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := k.Client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("kubernetes_secret destination %s: %w", k, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, data, err
}

// get returns the Secret, or nil when it does not exist.
func (k *KubeSecret) get(ctx context.Context) (*secret, error) {
	code, data, err := k.do(ctx, http.MethodGet, k.url(true), nil)
	if err != nil {
		return nil, err
	}
	switch code {
	case http.StatusOK:
		var s secret
		if err := json.Unmarshal(data, &s); err != nil {
			return nil, fmt.Errorf("kubernetes_secret destination %s: decoding the Secret: %w", k, err)
		}
		return &s, nil
	case http.StatusNotFound:
		return nil, nil
	}
	return nil, k.apiError("reading", code, data)
}

func (k *KubeSecret) apiError(what string, code int, body []byte) error {
	var st struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &st)
	msg := st.Message
	if msg == "" {
		msg = http.StatusText(code)
	}
	err := fmt.Errorf("kubernetes_secret destination %s: %s the Secret: %d %s", k, what, code, msg)
	if code == http.StatusForbidden || code == http.StatusUnauthorized {
		return errs.Wrap(errs.AccessDenied, err)
	}
	return err
}

// Write implements Destination: it replaces the Secret's data in one update, which the
// API server applies atomically.
func (k *KubeSecret) Write(ctx context.Context, files map[string][]byte) error {
	if err := k.init(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		cur, err := k.get(ctx)
		if err != nil {
			return err
		}
		s := secret{APIVersion: "v1", Kind: "Secret", Type: "Opaque",
			Metadata: secretMeta{Name: k.Name, Namespace: k.Namespace, Labels: maps.Clone(k.Labels)}, Data: map[string][]byte{}}
		method, u := http.MethodPost, k.url(false)
		if cur != nil {
			maps.Copy(s.Data, cur.Data)
			s.Metadata.ResourceVersion = cur.Metadata.ResourceVersion
			if s.Type = cur.Type; s.Type == "" {
				s.Type = "Opaque"
			}
			method, u = http.MethodPut, k.url(true)
		}
		maps.Copy(s.Data, files)
		code, data, err := k.do(ctx, method, u, s)
		if err != nil {
			return err
		}
		if code == http.StatusOK || code == http.StatusCreated {
			return nil
		}
		// 409: someone else changed the Secret between our read and write; read again.
		if code == http.StatusConflict && attempt < 3 {
			continue
		}
		return k.apiError("writing", code, data)
	}
}

// Read implements Destination.
func (k *KubeSecret) Read(ctx context.Context, name string) ([]byte, error) {
	if err := k.init(); err != nil {
		return nil, err
	}
	s, err := k.get(ctx)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errs.NotFoundf("Secret %s/%s does not exist", k.Namespace, k.Name)
	}
	v, ok := s.Data[name]
	if !ok {
		return nil, errs.NotFoundf("Secret %s/%s has no key %q", k.Namespace, k.Name, name)
	}
	return v, nil
}
