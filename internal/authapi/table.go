package authapi

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// This file is the table: what every Auth API method requires of its caller. The
// interceptor in edge.go enforces it for unary and stream calls alike, before the
// method's handler runs; a method without a row is refused (and a test fails).

// Access says who may call a method at all.
type Access int

// The kinds of access a row can require.
const (
	// Public: anyone, with or without a certificate.
	Public Access = iota + 1
	// Credential: no certificate is needed; the request carries its own credential (a
	// join token, a password), which the Auth Service checks, rate-limits per source and
	// audits when it fails.
	Credential
	// Authenticated: any verified identity; the answer depends on who asks.
	Authenticated
	// Self: the caller acts on its own identity; the row's Self says which qualify.
	Self
	// Rules: the caller's roles' `rules` must allow every (kind, verb) the row's Perms
	// returns for the request (deny beats allow).
	Rules
	// SelfOrRules: Self when the call is the caller acting on itself, Rules otherwise.
	SelfOrRules
)

var accessNames = map[Access]string{Public: "public", Credential: "credential in the request",
	Authenticated: "any identity", Self: "the caller itself", Rules: "rules", SelfOrRules: "the caller itself, or rules"}

func (a Access) String() string { return accessNames[a] }

// Perm is one (resource kind, verb) pair of role `rules`.
type Perm struct{ Kind, Verb string }

func (p Perm) String() string { return p.Kind + ":" + p.Verb }

// Row is what one method requires.
type Row struct {
	Access Access
	// Perms returns the rules a call needs, from its request (Rules, SelfOrRules). A
	// stream call gets a nil request: its Perms must not look at it.
	Perms func(req any) []Perm
	// Self returns nil when the call is the caller acting on itself, an error wrapping
	// errNotSelf when it is not, and any other error to refuse the call outright.
	Self func(id *tlsca.Identity, req any) error
	// Locked: a locked caller may still make the call.
	Locked bool
	// Requires says the requirement in words, for the docs and for refusals.
	Requires string
}

// errNotSelf marks "this call is not about the caller itself".
var errNotSelf = errors.New("not the caller's own identity")

// Table holds a row for every Auth API method, by full gRPC method name.
var Table = map[string]Row{
	pb.AuthService_Ping_FullMethodName: {Access: Public, Requires: "nothing"},
	pb.AuthService_GetClusterCAs_FullMethodName: {Access: Authenticated, Locked: true,
		Requires: "any identity, locked or not (the CA certificates are public)"},
	pb.AuthService_WhoAmI_FullMethodName: {Access: Authenticated, Requires: "any identity"},

	pb.AuthService_CreateResource_FullMethodName: {Access: Rules, Perms: by(createResourcePerms),
		Requires: "KIND:create; KIND:update with --force or a revision (KIND is the resource's)"},
	pb.AuthService_GetResource_FullMethodName: {Access: Rules, Requires: "KIND:read",
		Perms: by(func(r *pb.GetResourceRequest) []Perm { return []Perm{{r.GetKind(), auth.VerbRead}} })},
	pb.AuthService_ListResources_FullMethodName: {Access: Rules, Requires: "KIND:list",
		Perms: by(func(r *pb.ListResourcesRequest) []Perm { return []Perm{{r.GetKind(), auth.VerbList}} })},
	pb.AuthService_DeleteResource_FullMethodName: {Access: Rules, Requires: "KIND:delete",
		Perms: by(func(r *pb.DeleteResourceRequest) []Perm { return []Perm{{r.GetKind(), auth.VerbDelete}} })},

	pb.AuthService_CreateUser_FullMethodName: rules(types.KindUser, auth.VerbCreate),
	pb.AuthService_ResetUser_FullMethodName:  rules(types.KindUser, auth.VerbUpdate),

	pb.AuthService_CreateBot_FullMethodName:        rules(types.KindBot, auth.VerbCreate, types.KindToken, auth.VerbCreate),
	pb.AuthService_UpdateBot_FullMethodName:        rules(types.KindBot, auth.VerbUpdate),
	pb.AuthService_ListBotInstances_FullMethodName: rules(types.KindBotInstance, auth.VerbList),
	pb.AuthService_CreateToken_FullMethodName:      rules(types.KindToken, auth.VerbCreate),
	pb.AuthService_CreateLock_FullMethodName:       rules(types.KindLock, auth.VerbCreate),

	pb.AuthService_SignUser_FullMethodName: {Access: SelfOrRules, Self: signsOwnLogin, Perms: need(types.KindUser, auth.VerbUpdate),
		Requires: "a user renewing their own login (not from a certificate routed to one kube cluster); else user:update"},
	pb.AuthService_JoinBot_FullMethodName:               {Access: Credential, Requires: "a bot join token (or the join method's proof)"},
	pb.AuthService_ListProxies_FullMethodName:           {Access: Authenticated, Requires: "any identity (Kubernetes Services learn where to open tunnels; tctl proxies ls)"},
	pb.AuthService_BoundKeypairChallenge_FullMethodName: {Access: Public, Requires: "nothing (a single-use challenge for a bound_keypair token; rate-limited per source)"},
	pb.AuthService_RenewBot_FullMethodName: {Access: Self, Self: renewableBot,
		Requires: "a bot's renewable identity (its generation is checked by the Auth Service)"},
	pb.AuthService_GenerateBotCerts_FullMethodName: {Access: Self, Self: renewableBot,
		Requires: "a bot's renewable identity"},
	pb.AuthService_Login_FullMethodName: {Access: Credential, Requires: "the user's password (and OTP code)"},
	pb.AuthService_JoinHost_FullMethodName: {Access: Credential,
		Requires: "a kube join token; or a Kubernetes Service's own host certificate, to renew it (its lock is checked)"},

	pb.AuthService_HeartbeatKubeClusters_FullMethodName: {Access: Rules, Perms: need(types.KindKubeCluster, auth.VerbUpdate),
		Requires: "kube_cluster:update (a Kubernetes Service's host certificate has it, for its own clusters)"},
	pb.AuthService_ListKubeClusters_FullMethodName: {Access: Authenticated,
		Requires: "any identity; each cluster says whether the caller may reach it"},
	pb.AuthService_KubeCanI_FullMethodName: {Access: Rules, Perms: by(kubeCanIPerms),
		Requires: "user:read (--user) or bot:read (--bot)"},
	pb.AuthService_SearchAudit_FullMethodName:    rules(types.KindEvent, auth.VerbList),
	pb.AuthService_ListRecordings_FullMethodName: rules(types.KindSession, auth.VerbList),
	pb.AuthService_GetRecording_FullMethodName:   rules(types.KindSession, auth.VerbRead),
	pb.AuthService_ListActiveSessions_FullMethodName: {Access: Authenticated,
		Requires: "any identity; only the live sessions its roles' allow.join_sessions cover are listed"},
	pb.AuthService_JoinSession_FullMethodName: {Access: Authenticated,
		Requires: "any identity whose roles' allow.join_sessions cover the session's owner (checked and audited as session.join)"},

	pb.AuthService_CreateAccessRequest_FullMethodName: {Access: Authenticated,
		Requires: "a user whose roles' allow.request covers what is asked (checked and audited as access_request.create; bots are refused)"},
	pb.AuthService_ListAccessRequests_FullMethodName: {Access: Authenticated,
		Requires: "any identity; lists its own requests, those its allow.review_requests covers, or all with access_request:list"},
	pb.AuthService_GetAccessRequest_FullMethodName: {Access: Authenticated,
		Requires: "the request's author, a reviewer of its roles, or access_request:read"},
	pb.AuthService_DeleteAccessRequest_FullMethodName: {Access: Authenticated,
		Requires: "the request's author, or access_request:delete (audited as access_request.delete)"},
	pb.AuthService_ReviewAccessRequest_FullMethodName: {Access: Authenticated,
		Requires: "allow.review_requests covering every requested role, or access_request:update; never the request's author (audited as access_request.review)"},

	pb.AuthService_CreateSSOAuthRequest_FullMethodName: {Access: Public,
		Requires: "nothing (starts an SSO login; the provider's sign-in and the client's secret are checked later)"},
	pb.AuthService_CreateSSOTestRequest_FullMethodName: {Access: Rules, Requires: "KIND:read (oidc or github: tctl sso test)",
		Perms: by(func(r *pb.CreateSSOAuthRequestRequest) []Perm { return []Perm{{r.GetKind(), auth.VerbRead}} })},
	pb.AuthService_FinishSSOLogin_FullMethodName: {Access: Credential,
		Requires: "the secret of the client that started the SSO login (the result is handed out once)"},
}

// by adapts a function of one request type to a row's Perms.
func by[T any](f func(T) []Perm) func(any) []Perm {
	return func(req any) []Perm {
		r, _ := req.(T)
		return f(r)
	}
}

// need returns a Perms that asks for the same pairs whatever the request: kind, verb,
// kind, verb, ….
func need(kindVerb ...string) func(any) []Perm {
	ps := perms(kindVerb)
	return func(any) []Perm { return ps }
}

// rules is the row of a method that needs the same rules whatever the request, with its
// Requires text written from them ("bot:create and token:create").
func rules(kindVerb ...string) Row {
	ps := perms(kindVerb)
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.String()
	}
	return Row{Access: Rules, Perms: func(any) []Perm { return ps }, Requires: strings.Join(names, " and ")}
}

func perms(kindVerb []string) []Perm {
	var ps []Perm
	for i := 0; i+1 < len(kindVerb); i += 2 {
		ps = append(ps, Perm{kindVerb[i], kindVerb[i+1]})
	}
	return ps
}

func createResourcePerms(r *pb.CreateResourceRequest) []Perm {
	kind := r.GetResource().GetKind()
	switch {
	case r.GetExpectedRevision() != 0:
		return []Perm{{kind, auth.VerbUpdate}}
	case r.GetForce():
		// Overwriting needs update rights too.
		return []Perm{{kind, auth.VerbCreate}, {kind, auth.VerbUpdate}}
	}
	return []Perm{{kind, auth.VerbCreate}}
}

func kubeCanIPerms(r *pb.KubeCanIRequest) []Perm {
	if r.GetBot() != "" {
		return []Perm{{types.KindBot, auth.VerbRead}}
	}
	return []Perm{{types.KindUser, auth.VerbRead}}
}

// signsOwnLogin: a user (not a bot, not one of Keyport's own services) asking for a
// certificate for themselves, as tsh kube credentials does. A certificate routed to one
// kube cluster was only ever meant for that cluster and may not mint others.
func signsOwnLogin(id *tlsca.Identity, req any) error {
	r, _ := req.(*pb.SignUserRequest)
	if id.SystemRole != "" || id.IsBot() || id.Username != r.GetUser() {
		return errNotSelf
	}
	if id.KubeCluster != "" {
		return errs.AccessDeniedf("a certificate routed to kube cluster %q cannot be used to issue certificates; use your login certificate", id.KubeCluster)
	}
	return nil
}

// renewableBot: a bot's renewable internal identity, not an output certificate.
func renewableBot(id *tlsca.Identity, _ any) error {
	if !id.Renewable || id.BotName == "" || id.SystemRole != "" {
		return fmt.Errorf("only a bot's renewable identity may make this call: %w", errNotSelf)
	}
	return nil
}

// Markdown renders the table for docs/ARCHITECTURE.md, one row per method in name order
// (a test keeps the page equal to it).
func Markdown() string {
	var methods []string
	for m := range Table {
		methods = append(methods, m)
	}
	slices.Sort(methods)
	var b strings.Builder
	b.WriteString("| method | who may call | requires | locked caller |\n|---|---|---|---|\n")
	for _, m := range methods {
		r := Table[m]
		locked := "refused"
		switch {
		case r.Access == Public || r.Access == Credential:
			locked = "n/a (no identity needed)"
		case r.Locked:
			locked = "allowed"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", shortName(m), r.Access, r.Requires, locked)
	}
	return b.String()
}
