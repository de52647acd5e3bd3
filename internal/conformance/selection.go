package conformance

// DefaultFocus selects the API machinery conformance tests.
const DefaultFocus = `\[sig-api-machinery\].*\[Conformance\]`

// DefaultSkip leaves out what this test bed cannot run, directly or through Keyport, or
// not in reasonable time: webhooks and the aggregator are served from pods that must run
// real containers (kwok pods run none); the chunking test of a compacted version waits
// for the API server's five-minute etcd compaction; ordered namespace deletion waits
// five minutes for a pod that must really run; [Serial] and [Disruptive] tests change
// the whole cluster.
const DefaultSkip = `AdmissionWebhook|CustomResourceConversionWebhook|Aggregator|compacted away|should delete pod first|\[Serial\]|\[Disruptive\]`
