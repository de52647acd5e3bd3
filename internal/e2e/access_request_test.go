package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/types"
)

// requestRoles: "requester" holds no Kubernetes access but may request the guide's
// example-role (whole, or as search_as_roles on resources); "reviewer" reviews requests
// for it.
func requestRoles(t *testing.T, s *kubeSetup) {
	t.Helper()
	createResource(t, s.admin, types.NewRole("requester", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		Request: &types.AccessRequestConditions{Roles: []string{"example-role"}, SearchAsRoles: []string{"example-role"}}}}))
	createResource(t, s.admin, types.NewRole("reviewer", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		ReviewRequests: &types.AccessReviewConditions{Roles: []string{"example-role"}}}}))
}

var requestIDRe = regexp.MustCompile(`Request ID: +([0-9a-f-]{36})`)

func requestID(t *testing.T, out string) string {
	t.Helper()
	m := requestIDRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no request ID in:\n%s", out)
	}
	return m[1]
}

// wantFail runs a command that must fail with msg in its output.
func (u *tshUser) wantFail(msg, prog string, args ...string) {
	u.t.Helper()
	out, errOut, err := u.run("", prog, args...)
	if err == nil || !strings.Contains(out+errOut, msg) {
		u.t.Fatalf("%s %s: err %v, want a failure saying %q; output:\n%s%s", prog, strings.Join(args, " "), err, msg, out, errOut)
	}
}

// TestAccessRequests: with the built tsh and tctl against a real control plane, a user
// without standing Kubernetes access gets 403, asks for the guide's role, a reviewer
// approves, and after tsh login --request-id kubectl works until the request's access
// ends; a denied request grants nothing; each refusal has its own message; a lock on a
// request ends it; every step is in the audit log.
func TestAccessRequests(t *testing.T) {
	s := newKubeSetup(t)
	requestRoles(t, s)
	ctx := context.Background()
	alice := newPerson(t, s, "alice", "requester")
	bob := newPerson(t, s, "bob", "reviewer")
	eve := newPerson(t, s, "eve", "requester")
	tctl := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(binDir, "tctl"), append([]string{"-c", s.env.ConfigPath()}, args...)...).CombinedOutput()
		return string(out), err
	}

	// No standing access: tsh kube login says so, and a certificate of alice's gets 403.
	alice.wantFail(`your roles do not grant access to kube cluster "example-k8s-cluster"`, "tsh", "kube", "login", guideCluster)
	direct := writeKubeconfig(t, s.env, signIdentity(t, s.admin, "alice"))
	if out, err := kubectl(t, direct, "get", "pods", "-A"); err == nil || !strings.Contains(out, "Forbidden") {
		t.Fatalf("kubectl without access: %v\n%s", err, out)
	}

	// Refusals, each with its own message.
	alice.wantFail(`role "reviewer" is not requestable: none of your roles (requester) lists it in allow.request.roles`,
		"tsh", "request", "create", "--roles=reviewer")
	// The request: pending, visible to the reviewer, not usable yet.
	out := alice.must("", "tsh", "request", "create", "--roles=example-role", "--reason=deploy fix", "--max-duration=20s")
	id := requestID(t, out)
	alice.wantFail("is not approved yet (pending)", "tsh", "login", "--request-id="+id)
	alice.wantFail("you cannot review your own access request", "tsh", "request", "review", "--approve", id)
	if ls := bob.must("", "tsh", "request", "ls"); !strings.Contains(ls, id) || !strings.Contains(ls, "PENDING") || !strings.Contains(ls, "deploy fix") {
		t.Errorf("reviewer's list:\n%s", ls)
	}
	if ls := eve.must("", "tsh", "request", "ls"); strings.Contains(ls, id) {
		t.Errorf("another requester sees alice's request:\n%s", ls)
	}
	out = bob.must("", "tsh", "request", "review", "--approve", "--reason=go ahead", id)
	if !strings.Contains(out, "it is now APPROVED") {
		t.Errorf("review output:\n%s", out)
	}
	eve.wantFail("belongs to another user", "tsh", "login", "--request-id="+id)

	// Approved: the reissued login carries the role; kubectl works through tsh kube login.
	status := alice.must("", "tsh", "login", "--request-id="+id)
	if !strings.Contains(status, "example-role") || !strings.Contains(status, "Active requests:    "+id) {
		t.Errorf("tsh login --request-id status:\n%s", status)
	}
	alice.must("", "tsh", "kube", "login", guideCluster)
	if out := alice.must("", "kubectl", "get", "pods", "-A"); !strings.Contains(out, "web-0") {
		t.Errorf("kubectl get pods -A with the request:\n%s", out)
	}
	// After the request's access ends, the login has expired with it.
	ar, err := s.admin.GetAccessRequest(ctx, &pb.GetAccessRequestRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Spec struct {
			AccessExpires time.Time `json:"access_expires"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(ar.GetJson(), &spec); err != nil {
		t.Fatal(err)
	}
	// A request whose review window (10 s) passes during the wait below.
	out = alice.must("", "tsh", "request", "create", "--roles=example-role", "--max-duration=10s")
	late := requestID(t, out)
	time.Sleep(max(time.Until(spec.Spec.AccessExpires), 10*time.Second) + time.Second)
	if out, errOut, err := alice.run("", "kubectl", "get", "pods", "-A"); err == nil {
		t.Fatalf("kubectl after the request's access ended worked:\n%s%s", out, errOut)
	}
	// The login ended with the request's access: a new one has no access, and the
	// request cannot be used again.
	alice.wantFail("expired at", "tsh", "request", "ls")
	alice.login(t)
	if out, _, err := alice.run("", "kubectl", "get", "pods", "-A"); err == nil {
		t.Errorf("kubectl after the request's access ended and a new login worked:\n%s", out)
	}
	alice.wantFail("ended at", "tsh", "login", "--request-id="+id)

	// A denied request grants nothing.
	out = alice.must("", "tsh", "request", "create", "--roles=example-role", "--reason=again")
	denied := requestID(t, out)
	if out, err := tctl("request", "deny", "--reason=not today", denied); err != nil || !strings.Contains(out, "it is now DENIED") {
		t.Fatalf("tctl request deny: %v\n%s", err, out)
	}
	alice.wantFail("was denied", "tsh", "login", "--request-id="+denied)
	if out, _, err := alice.run("", "kubectl", "get", "pods", "-A"); err == nil {
		t.Errorf("kubectl after a denied request worked:\n%s", out)
	}

	// An expired request cannot be approved.
	bob.wantFail("expired at", "tsh", "request", "review", "--approve", late)

	// A resource request: the role's access to one pod only; lists are filtered to it.
	pod := "/" + testenv.ClusterName + "/pod/" + guideCluster + "/default/web-0"
	out = alice.must("", "tsh", "request", "create", "--resource="+pod, "--reason=look at web-0")
	podReq := requestID(t, out)
	if !strings.Contains(out, "Resources:      "+pod) || !strings.Contains(out, "Roles:          example-role") {
		t.Errorf("resource request:\n%s", out)
	}
	bob.must("", "tsh", "request", "review", "--approve", podReq)
	if status := alice.must("", "tsh", "login", "--request-id="+podReq); !strings.Contains(status, "Allowed resources:  "+pod) {
		t.Errorf("status with a resource request:\n%s", status)
	}
	if out := alice.must("", "kubectl", "get", "pods", "-A", "-o", "name"); strings.TrimSpace(out) != "pod/web-0" {
		t.Errorf("pods listed with a request for web-0 only:\n%s", out)
	}
	alice.must("", "kubectl", "get", "pod", "web-0", "-n", "default")
	for _, args := range [][]string{{"get", "pod", "dns-0", "-n", "kube-system"}, {"get", "secrets", "-n", "default"}} {
		out, errOut, err := alice.run("", "kubectl", args...)
		if err == nil || !strings.Contains(errOut, "grant only "+pod) {
			t.Errorf("kubectl %v with a request for web-0 only: %v\n%s%s", args, err, out, errOut)
		}
	}

	// A lock on a request ends the access it granted.
	out = alice.must("", "tsh", "request", "create", "--roles=example-role")
	locked := requestID(t, out)
	if out, err := tctl("request", "approve", locked); err != nil {
		t.Fatalf("tctl request approve: %v\n%s", err, out)
	}
	alice.must("", "tsh", "login", "--request-id="+locked)
	alice.must("", "kubectl", "get", "pods", "-A")
	if out, err := tctl("lock", "--access-request="+locked, "--message=incident over"); err != nil {
		t.Fatalf("tctl lock: %v\n%s", err, out)
	}
	var lockedOut string
	waitUntil(t, 10*time.Second, func() bool {
		out, errOut, err := alice.run("", "kubectl", "get", "pods", "-A")
		lockedOut = out + errOut
		return err != nil
	})
	if !strings.Contains(lockedOut, "incident over") {
		t.Errorf("kubectl with a locked request:\n%s", lockedOut)
	}

	// tsh request create --wait: waits for the review, then logs in with the request.
	waiting := startBg(t, eve.env, eve.home, "", "tsh", "request", "create", "--roles=example-role", "--reason=waiting", "--wait")
	var waitID string
	waitUntil(t, 20*time.Second, func() bool {
		out, _ := waiting.output()
		if m := requestIDRe.FindStringSubmatch(out); m != nil && strings.Contains(out, "Waiting for review (until") {
			waitID = m[1]
			return true
		}
		return false
	})
	bob.must("", "tsh", "request", "review", "--approve", waitID)
	if out, errOut, err := waiting.wait(t); err != nil || !strings.Contains(out, "Approved. Logging in with the request.") ||
		!strings.Contains(out, "Active requests:    "+waitID) {
		t.Errorf("tsh request create --wait: %v\n%s%s", err, out, errOut)
	}
	eve.must("", "tsh", "kube", "login", guideCluster)
	eve.must("", "kubectl", "get", "pods", "-A")

	// tctl sees them all; the audit log has every step.
	if out, err := tctl("request", "ls"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, denied) || !strings.Contains(out, "EXPIRED") {
		t.Errorf("tctl request ls: %v\n%s", err, out)
	}
	ev, err := s.admin.SearchAudit(ctx, &pb.SearchAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, e := range ev.GetEvents() {
		var x audit.Event
		if err := json.Unmarshal(e.GetJson(), &x); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(x.Type, "access_request.") {
			counts[x.Type+map[bool]string{true: "", false: " refused"}[x.Success]]++
		}
	}
	want := map[string]int{"access_request.create": 6, "access_request.create refused": 1, "access_request.review": 5, "access_request.review refused": 2}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("audit %s: %d, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
}

// person is a user with a password and an OTP device, logged in with the built tsh.
type person struct {
	*tshUser
	name, proxy, secret string
	step                int64
	trusted             bool // tsh asks to trust the proxy's CA at the first login only
}

const personPassword = "a person's password"

func newPerson(t *testing.T, s *kubeSetup, name string, roles ...string) *person {
	t.Helper()
	resp, err := s.admin.CreateUser(context.Background(), &pb.CreateUserRequest{Name: name, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	enrolled, err := completeInvite(context.Background(), resp.GetInviteUrl(), personPassword)
	if err != nil {
		t.Fatal(err)
	}
	p := &person{tshUser: newTshUser(t, filepath.Join(t.TempDir(), "kubeconfig")), name: name, proxy: s.env.WebAddr,
		secret: enrolled.OTPSecret, step: enrolled.Step}
	p.login(t)
	return p
}

// login runs tsh login with the password and a fresh OTP code.
func (p *person) login(t *testing.T) {
	t.Helper()
	code, step, err := nextTOTP(p.secret, p.step)
	if err != nil {
		t.Fatal(err)
	}
	p.step = step
	trust := "y\n"
	if p.trusted {
		trust = ""
	}
	p.must(trust+personPassword+"\n"+code+"\n", "tsh", "login", "--proxy="+p.proxy, "--user="+p.name)
	p.trusted = true
}
