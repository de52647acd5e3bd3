// Package access owns Keyport's decisions about Kubernetes access (SPEC section 6): which
// kube clusters an identity's roles grant, which Kubernetes users and groups it acts as
// there, and which API requests and list items kubernetes_resources allow. It is pure:
// no I/O, no clock, no logging. Callers hand it roles (already checked by package types),
// traits and parsed requests, and act on its answers.
//
// Roles are compiled once per identity by NewChecker, so that label selectors, glob and
// ^regex$ patterns and templates never cost anything on a request. CheckCluster picks
// the roles that grant a cluster and returns a ClusterAccess, whose Impersonation,
// Authorize (CheckResource, NeedsFiltering) and ItemAllowed the proxy calls per request
// and per item.
//
// Choices the docs must state:
//   - Deny beats allow everywhere, and deny comes from every role of the identity, not
//     only from the roles that grant the cluster. A role's deny kubernetes_labels refuse
//     the clusters they match; its deny kubernetes_resources, kubernetes_groups and
//     kubernetes_users apply on every cluster. Deny groups and users are patterns
//     ("system:*" removes every system group); allow values are literal names.
//   - Templates ({{internal.x}}, {{external.x}}, email.local, regexp.replace) expand from
//     the identity's traits in kubernetes_groups, kubernetes_users and kubernetes_labels
//     values; a value that expands to nothing is dropped. Keyport has one trait map, read
//     by both internal and external. kubernetes_resources fields are not expanded: a
//     "{{…}}" there is a literal and matches nothing, which fails closed.
//   - A role set that grants a cluster with no kubernetes_groups and no kubernetes_users
//     (after templates and deny) is refused with "has no kubernetes_groups and no
//     kubernetes_users". The Keyport user name stands in for kubernetes_users only when
//     some group is allowed.
//   - v5/v6 kubernetes_resources restrict pods only; every other resource is allowed by
//     such a role. v6's default is empty, so a v6 role without kubernetes_resources
//     grants no pods but everything else (as in Teleport). A kind '*' entry in v5/v6 has
//     the v7 meaning and turns the role into one that restricts every kind, like v7.
//   - v7 kinds map to API group and resource via types.KubeKindV7; resources outside the
//     v7 table (CRDs, events, …) are reachable only through kind '*' or kind namespace.
//     kind namespace covers the namespace object and everything in the namespaces its
//     name matches. Cluster-wide v7 kinds ignore the entry's namespace, as in Teleport;
//     kind '*' reaches cluster-scoped objects only when its namespace matches "" ('*').
//   - v8 matches plural resource names and api_group patterns; "" is the core group. An
//     entry without a namespace selects only cluster-scoped objects.
//   - name, namespace and api_group take literals, "*" globs or ^regex$ (always matched
//     against the whole value). An allow entry without verbs allows nothing; a deny
//     entry without verbs denies every verb.
//   - Subresources are checked as their parent object (see RoleVerb): exec and attach
//     need the exec verb, portforward the portforward verb, and the proxy subresources
//     (pods/proxy, services/proxy, nodes/proxy) need exec, since they reach any HTTP
//     endpoint of the workload.
//   - A list or watch allowed only in part (or denied in part) proceeds and its items or
//     events are filtered with ItemAllowed; deletecollection and nameless create cannot
//     be filtered and need full access. Anyone allowed to get/list/watch something in a
//     namespace may get/list/watch that namespace object.
//   - Non-resource URLs (/api, /apis, /version, /openapi) are always allowed; the API
//     server's RBAC decides them.
package access
