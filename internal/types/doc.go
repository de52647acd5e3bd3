// Package types owns Keyport's resources — role, user, bot, token, kube_cluster and lock —
// their validation and defaults, and their codecs: the strict YAML that `tctl create`
// reads and `tctl get` prints, the JSON of `--format=json`, and the JSON the backend
// stores. Every other package takes resources from here already checked, so access
// decisions never have to second-guess a field.
//
// # Documents
//
// A resource is {kind, version, metadata: {name, description, labels, expires}, spec}.
// Kinds and versions: role v5–v8, user v2, bot v1, token v2, kube_cluster v3, lock v2.
// metadata.revision is not part of the document: the backend keeps it beside the value.
//
// Decode is strict and all-or-nothing. An unknown field, a wrong type, an invalid value, a
// duplicate key, an unknown kind or version fails the whole file with one error, of
// category errs.BadParameter, in the form
//
//	role.yaml:9: spec.allow.kubernetes_groupz: unknown field
//
// The line is the line of the field's key (of the item, for list items); a missing field
// is reported at its parent. Other choices a reader of the docs should know:
//   - Empty documents are skipped; a file with no resource is an error.
//   - `field:` and `field: ~` mean "not set"; an empty list or mapping is the same as an
//     absent one (Encode leaves both out). A null list item or map value is an error.
//   - YAML aliases and custom tags are rejected: resources have no use for them, and
//     aliases would let a short file expand into a huge one.
//   - A number or boolean where a string is expected is taken as its text (`name: 2024`).
//   - Durations are Go duration strings ("8h", "90m"); a bare number is an error rather
//     than a guess at its unit. They are written back compactly ("1h30m", not "1h30m0s").
//   - Times are RFC 3339 and are kept in UTC, so an offset is not preserved.
//   - Names (metadata.name, role and bot names) are 1–253 characters of letters, digits
//     and - _ . @ : + =; in particular never "/", since names appear in URL paths and
//     backend keys. A bot name leaves room for the "bot-" prefix of its user and role.
//
// # Roles
//
// Defaults and validation follow Teleport, version by version:
//   - options.max_session_ttl defaults to 30h.
//   - allow.kubernetes_resources, when empty in a role that has allow.kubernetes_labels,
//     becomes [{kind: pod, namespace: '*', name: '*'}] in v5, stays empty in v6, and
//     becomes everything ({kind: '*', namespace: '*', name: '*', verbs: ['*']}, plus
//     api_group: '*' in v8) in v7 and v8. A role without kubernetes_labels grants no
//     cluster and gets no default; deny never gets one.
//   - v5/v6 accept kinds pod and, as a Keyport extension (so the guide's v6 role works),
//     "*" with its v7 meaning. Verbs do not exist before v7: an entry gets verbs ['*'] and
//     ['*'] is the only list accepted (as in Teleport, so `tctl get` output reads back).
//   - v7 accepts "*" and the kinds of KubeKindV7; v8 accepts "*" or a plural resource name
//     with api_group, which may be empty only for core resources (pods, secrets, …). A v7
//     kind in a v8 role with api_group "*" or its v7 group is rejected as a missed
//     migration. api_group exists only in v8.
//   - namespace is required for namespaced kinds (for v8, known ones); name is required.
//     Both take literals, "*" globs, or ^regex$ that must compile.
//   - Kubernetes verbs: "*" alone, or get, list, watch, create, update, patch, delete,
//     deletecollection, exec, portforward.
//   - rules: resources are role, user, bot, bot_instance, token, kube_cluster, lock,
//     cert_authority, event, or "*"; verbs are list, read, create, update, delete or "*".
//   - kubernetes_labels values are a string or a list; a "*" key takes only the value "*";
//     every key needs a value.
//   - kubernetes_groups/users may hold one {{internal.x}} / {{external.x}} template;
//     unbalanced braces are rejected here, expansion is the access layer's job.
//
// # Other kinds
//
//   - token: spec.roles is exactly one of Bot or Kube, in any case, stored as "Bot"/"Kube".
//     bot_name is required for Bot and refused for Kube. join_method is token (default)
//     or kubernetes; kubernetes needs spec.kubernetes.allow of "namespace:name" service
//     accounts, and spec.kubernetes.type, accepted for Teleport files, defaults to and
//     must be in_cluster. github, gitlab and oidc (Bot only) need their block with at
//     least one allow rule; a GitHub rule names sub, repository or repository_owner, a
//     GitLab rule sub, project_path or namespace_path, an oidc rule at least one claim;
//     hosts are host[:port], an oidc issuer an https URL. bound_keypair needs its block
//     with a registration secret hash or a public key; rejoins defaults to 10 and
//     recovery to true. Each method's block is refused under another method.
//     metadata.expires is optional here; the auth package gives token and kubernetes
//     tokens their default TTL, and the other methods none.
//   - lock: spec.target sets exactly one of user, role, bot, bot_instance_id, login.
//   - bot: spec.traits also reads Teleport's list form [{name, values}] and is written as
//     a map, like a user's.
//   - user: no secrets. Password hashes and OTP keys are stored apart by the auth package.
//
// # Encoding
//
// Encode writes kind, version, metadata, spec in that order with empty fields left out,
// so Decode(Encode(r)) equals r once defaults are applied. It builds the YAML node tree
// itself rather than use yaml.v3's reflection encoder, whose output does not always read
// back (see toNode). MarshalStorage/UnmarshalStorage use JSON; UnmarshalStorage ignores
// unknown fields so that an older process in a rolling upgrade can read newer values.
package types
