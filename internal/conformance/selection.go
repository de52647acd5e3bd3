package conformance

// DefaultFocus selects the API machinery conformance tests.
const DefaultFocus = `\[sig-api-machinery\].*\[Conformance\]`

// DefaultSkip leaves out what this test bed cannot run, directly or through Keyport:
// webhooks and the aggregator are served from pods that must run real containers (kwok
// pods run none).
const DefaultSkip = `AdmissionWebhook|CustomResourceConversionWebhook|Aggregator|\[Serial\]|\[Disruptive\]`
