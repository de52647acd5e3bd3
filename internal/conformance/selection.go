package conformance

import (
	"regexp"
	"strings"
)

// DefaultFocus is `make conformance`'s selection: every [sig-api-machinery]
// [Conformance] test, the API machinery tests of server-side apply and of Table
// transformation (not tagged Conformance upstream, but what kubectl's printing and
// `kubectl apply --server-side` rely on), and kubectl's server-side dry-run test.
var DefaultFocus = strings.Join([]string{
	`\[sig-api-machinery\].*\[Conformance\]`,
	`\[sig-api-machinery\] ServerSideApply`,
	`\[sig-api-machinery\] Servers with support for Table transformation`,
	`\[sig-cli\] Kubectl client Kubectl server-side dry-run`,
}, "|")

// DefaultSkip leaves out what this test bed cannot run, directly or through Keyport, or
// not in reasonable time: webhooks and the aggregator are served from pods that must run
// real containers (kwok pods run none); the chunking test of a compacted version waits
// for the API server's five-minute etcd compaction; ordered namespace deletion, and the
// namespace test that all pods are removed, wait five minutes for pods that must really
// run and terminate; the namespace-deletion load tests create a hundred namespaces; the
// CustomResourceFieldSelectors test times out after five minutes directly too (its
// watch never sees the selected objects on this control plane); [Disruptive] tests
// restart parts of the cluster.
const DefaultSkip = `AdmissionWebhook|CustomResourceConversionWebhook|Aggregator|compacted away|should delete pod first|all pods are removed when a namespace is deleted|delete fast enough|always delete fast|CustomResourceFieldSelectors|\[Disruptive\]`

// CISelection is the part of the selection `make test` runs on every change, both ways:
// quick tests (a few seconds each, measured by `make conformance`) of each area the proxy
// must not change — chunking (of Tables), watch, CRDs, discovery, Table, field
// validation, server-side apply, dry-run, garbage collection, resource quota and
// namespaces. `make conformance` runs all of DefaultFocus.
var CISelection = []string{
	`[sig-api-machinery] Servers with support for Table transformation should return chunks of table results for list calls`,
	`[sig-api-machinery] Servers with support for Table transformation should return pod details`,
	`[sig-api-machinery] Servers with support for Table transformation should return generic metadata details across all namespaces for nodes`,
	`[sig-api-machinery] Watchers should be able to start watching from a specific resource version [Conformance]`,
	`[sig-api-machinery] Watchers should be able to restart watching from the last resource version observed by the previous watch [Conformance]`,
	`[sig-api-machinery] Watchers should receive events on concurrent watches in same order [Conformance]`,
	`[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] Simple CustomResourceDefinition creating/deleting custom resource definition objects works [Conformance]`,
	`[sig-api-machinery] CustomResourceDefinition resources [Privileged:ClusterAdmin] should include custom resource definition resources in discovery documents [Conformance]`,
	`[sig-api-machinery] AggregatedDiscovery should support aggregated discovery interface for CRDs [Conformance]`,
	`[sig-api-machinery] Discovery should validate PreferredVersion for each APIGroup [Conformance]`,
	`[sig-api-machinery] FieldValidation should detect unknown and duplicate fields of a typed object [Conformance]`,
	`[sig-api-machinery] FieldValidation should create/apply an invalid CR with extra properties for CRD with validation schema [Conformance]`,
	`[sig-api-machinery] ServerSideApply should work for CRDs`,
	`[sig-api-machinery] ServerSideApply should give up ownership of a field if forced applied by a controller`,
	`[sig-cli] Kubectl client Kubectl server-side dry-run should check if kubectl can dry-run update Pods [Conformance]`,
	`[sig-api-machinery] Garbage collector should delete RS created by deployment when not orphaning [Conformance]`,
	`[sig-api-machinery] ResourceQuota should manage the lifecycle of a ResourceQuota [Conformance]`,
	`[sig-api-machinery] ResourceQuota should create a ResourceQuota and ensure its status is promptly calculated. [Conformance]`,
	`[sig-api-machinery] Namespaces [Serial] should patch a Namespace [Conformance]`,
	`[sig-api-machinery] Namespaces [Serial] should apply changes to a namespace status [Conformance]`,
}

// FocusOn returns a ginkgo focus that selects exactly the named tests.
func FocusOn(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	return strings.Join(quoted, "|")
}
