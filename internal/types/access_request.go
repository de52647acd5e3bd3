package types

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// AccessRequest is a person's request for roles they do not hold, or for a role's
// access to some resources only, for a while. It is created by `tsh request create`,
// approved or denied by reviewers, and used by `tsh login --request-id`; it is stored by
// the Auth Service, not written with `tctl create`.
type AccessRequest struct {
	Header `yaml:",inline"`
	Spec   AccessRequestSpec `yaml:"spec" json:"spec"`
}

// Access request states.
const (
	RequestPending  = "PENDING"
	RequestApproved = "APPROVED"
	RequestDenied   = "DENIED"
)

// AccessRequestSpec is the body of an access request.
type AccessRequestSpec struct {
	User string `yaml:"user" json:"user"`
	// Roles are the roles the request grants when approved: the requested ones, or for
	// a resource request the requester's search_as_roles.
	Roles []string `yaml:"roles" json:"roles"`
	// Resources, when set, restrict what the certificate may reach to these.
	Resources []ResourceID `yaml:"resources,omitempty" json:"resources,omitempty"`
	Reason    string       `yaml:"reason,omitempty" json:"reason,omitempty"`
	State     string       `yaml:"state" json:"state"`
	Created   time.Time    `yaml:"created" json:"created"`
	// Expires ends a pending request: it can no longer be reviewed.
	Expires time.Time `yaml:"expires" json:"expires"`
	// AccessExpires is when the granted access ends: certificates issued with the
	// request live no longer.
	AccessExpires time.Time `yaml:"access_expires" json:"access_expires"`
	// Approve and Deny are how many reviews of each kind resolve the request.
	Approve int            `yaml:"approve" json:"approve"`
	Deny    int            `yaml:"deny" json:"deny"`
	Reviews []AccessReview `yaml:"reviews,omitempty" json:"reviews,omitempty"`
	// ResolveReason is the reason of the review that resolved the request.
	ResolveReason string `yaml:"resolve_reason,omitempty" json:"resolve_reason,omitempty"`
}

// AccessReview is one reviewer's approval or denial.
type AccessReview struct {
	Author  string    `yaml:"author" json:"author"`
	State   string    `yaml:"state" json:"state"`
	Reason  string    `yaml:"reason,omitempty" json:"reason,omitempty"`
	Created time.Time `yaml:"created" json:"created"`
}

// Kinds of ResourceID, as in Teleport's resource IDs.
const (
	ResourceKubeCluster = "kube_cluster"
	ResourceNamespace   = "namespace"
	ResourcePod         = "pod"
)

// ResourceID names one resource a request asks for: a kube cluster, a namespace in it,
// or a pod in a namespace.
type ResourceID struct {
	Cluster     string `yaml:"cluster" json:"cluster"`
	Kind        string `yaml:"kind" json:"kind"`
	KubeCluster string `yaml:"kube_cluster" json:"kube_cluster"`
	Namespace   string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Name        string `yaml:"name,omitempty" json:"name,omitempty"`
}

// ParseResourceID reads Teleport's resource ID syntax:
// /CLUSTER/kube_cluster/NAME, /CLUSTER/namespace/KUBE/NAMESPACE or
// /CLUSTER/pod/KUBE/NAMESPACE/POD.
func ParseResourceID(s string) (ResourceID, error) {
	const forms = "/CLUSTER/kube_cluster/NAME, /CLUSTER/namespace/KUBE_CLUSTER/NAMESPACE or /CLUSTER/pod/KUBE_CLUSTER/NAMESPACE/POD"
	parts := strings.Split(s, "/")
	if len(parts) < 4 || parts[0] != "" || slices.Contains(parts[1:], "") {
		return ResourceID{}, fmt.Errorf("resource %q: want %s", s, forms)
	}
	id := ResourceID{Cluster: parts[1], Kind: parts[2], KubeCluster: parts[3]}
	want := 0
	switch id.Kind {
	case ResourceKubeCluster:
		want = 4
	case ResourceNamespace:
		want = 5
		if len(parts) == want {
			id.Namespace = parts[4]
		}
	case ResourcePod:
		want = 6
		if len(parts) == want {
			id.Namespace, id.Name = parts[4], parts[5]
		}
	default:
		return ResourceID{}, fmt.Errorf("resource %q: kind %q is not one of kube_cluster, namespace or pod", s, id.Kind)
	}
	if len(parts) != want {
		return ResourceID{}, fmt.Errorf("resource %q: want %s", s, forms)
	}
	return id, nil
}

// String renders id in the syntax ParseResourceID reads.
func (id ResourceID) String() string {
	s := "/" + id.Cluster + "/" + id.Kind + "/" + id.KubeCluster
	switch id.Kind {
	case ResourceNamespace:
		s += "/" + id.Namespace
	case ResourcePod:
		s += "/" + id.Namespace + "/" + id.Name
	}
	return s
}

// Resolved reports whether the request has been approved or denied.
func (r *AccessRequest) Resolved() bool { return r.Spec.State != RequestPending }

// Count returns how many reviews are in state.
func (r *AccessRequest) Count(state string) int {
	n := 0
	for _, rv := range r.Spec.Reviews {
		if rv.State == state {
			n++
		}
	}
	return n
}
