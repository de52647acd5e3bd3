package tctl

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/types"
)

func (e *env) tokensCmd() *cobra.Command {
	tokens := &cobra.Command{Use: "tokens", Short: "Manage join tokens"}
	var (
		typ, botName, joinMethod, name string
		allow, rules                   []string
		ttl                            time.Duration
		ghesHost, domain, issuer, aud  string
		kubeType, jwksFile             string
	)
	add := &cobra.Command{
		Use:   "add --type=bot|kube",
		Short: "Create a join token",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, cmd *cobra.Command, _ []string) error {
			if typ == "" {
				return common.UsageErrorf("--type is required (bot or kube)")
			}
			// Tokens that hold rules rather than a secret are built here and created as
			// resources (the server validates them again); they expire only with --ttl.
			var exp *time.Time
			if cmd.Flags().Changed("ttl") {
				t := time.Now().Add(ttl).UTC()
				exp = &t
			}
			var (
				tok  *types.Token
				what string
				err  error
			)
			switch {
			case joinMethod == types.JoinMethodKubernetes && kubeType != "" && kubeType != types.KubernetesJoinInCluster:
				tok, err = kubeToken(typ, botName, name, kubeType, jwksFile, issuer, allow, exp)
				what = "join method kubernetes, type " + kubeType
			case joinMethod == types.JoinMethodGitHub, joinMethod == types.JoinMethodGitLab, joinMethod == types.JoinMethodOIDC:
				tok, err = ciToken(typ, botName, joinMethod, name, rules, ghesHost, domain, issuer, aud, exp)
				if tok != nil {
					what = "join method " + joinMethod + ", issuer " + tok.Spec.Issuer()
				}
			}
			if err != nil {
				return err
			}
			if tok != nil {
				p, err := toPB(tok)
				if err != nil {
					return err
				}
				if _, err := clt.CreateResource(ctx, &pb.CreateResourceRequest{Resource: p}); err != nil {
					return err
				}
				fmt.Fprintf(e.stdio.Out, "The %s join token %q (%s) has been created.\n", typ, tok.GetName(), what)
				if exp == nil {
					fmt.Fprintf(e.stdio.Out, "It does not expire: it holds rules, not a secret (remove it with tctl tokens rm %s).\n", tok.GetName())
				}
				return nil
			}
			resp, err := clt.CreateToken(ctx, &pb.CreateTokenRequest{Type: typ, BotName: botName, TtlSeconds: int64(ttl / time.Second),
				JoinMethod: joinMethod, AllowServiceAccounts: allow, Name: name})
			if err != nil {
				return err
			}
			mins := int(time.Until(time.Unix(resp.GetExpiresUnix(), 0)).Round(time.Minute) / time.Minute)
			if resp.GetToken() != "" {
				fmt.Fprintf(e.stdio.Out, "The %s join token: %s\nThis token will expire in %d minutes.\n", typ, resp.GetToken(), mins)
			} else {
				fmt.Fprintf(e.stdio.Out, "The %s join token %q (join method %s) has been created.\nIt will expire in %d minutes.\n", typ, resp.GetName(), joinMethod, mins)
			}
			return nil
		}),
	}
	add.Flags().StringVar(&typ, "type", "", "bot or kube")
	add.Flags().StringVar(&botName, "bot-name", "", "the bot a bot token is for")
	add.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	add.Flags().StringVar(&joinMethod, "join-method", "token", "token, kubernetes, github, gitlab or oidc (bound_keypair: tctl bots add --join-method=bound_keypair)")
	add.Flags().StringSliceVar(&allow, "allow-service-account", nil, "for kubernetes: ns:name allowed to join (repeatable)")
	add.Flags().StringVar(&name, "name", "", "for kubernetes, github, gitlab and oidc: the token's name")
	add.Flags().StringArrayVar(&rules, "rule", nil, "for github, gitlab and oidc: one allow rule, claim=glob[,claim=glob…] (repeatable; a rule matches when all its claims do)")
	add.Flags().StringVar(&ghesHost, "enterprise-server-host", "", "for github: the GitHub Enterprise Server host")
	add.Flags().StringVar(&domain, "domain", "", "for gitlab: a self-managed GitLab's domain")
	add.Flags().StringVar(&issuer, "issuer", "", "for oidc, and kubernetes with --kubernetes-type=oidc: the issuer URL")
	add.Flags().StringVar(&kubeType, "kubernetes-type", "", "for kubernetes: in_cluster (default; a TokenReview), static_jwks (--jwks-file) or oidc (--issuer)")
	add.Flags().StringVar(&jwksFile, "jwks-file", "", "for kubernetes with --kubernetes-type=static_jwks: the cluster's key set (kubectl get --raw /openid/v1/jwks > FILE)")
	add.Flags().StringVar(&aud, "audience", "", "for github, gitlab and oidc: the audience ID tokens carry (default: the cluster name)")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List join tokens (secrets are never shown: tokens are stored as hashes)",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			list, err := clt.ListResources(ctx, &pb.ListResourcesRequest{Kind: types.KindToken})
			if err != nil {
				return err
			}
			var rows [][]string
			for _, p := range list.GetResources() {
				r, err := fromPB(p)
				if err != nil {
					return err
				}
				t := r.(*types.Token)
				exp := "never"
				if t.Metadata.Expires != nil {
					exp = t.Metadata.Expires.UTC().Format(time.RFC3339)
					if time.Now().After(*t.Metadata.Expires) {
						exp += " (expired)"
					}
				}
				rows = append(rows, []string{t.GetName(), strings.Join(t.Spec.Roles, ","), t.Spec.BotName, t.Spec.JoinMethod, exp})
			}
			table(e.stdio.Out, []string{"Token", "Type", "Bot", "Join Method", "Expiry Time (UTC)"}, rows)
			return nil
		}),
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a join token (by the name tokens ls shows, or by its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			p, err := clt.GetResource(ctx, &pb.GetResourceRequest{Kind: types.KindToken, Name: args[0]})
			name := args[0]
			if err == nil {
				if r, derr := fromPB(p); derr == nil {
					name = r.GetName()
				}
			}
			if _, err := clt.DeleteResource(ctx, &pb.DeleteResourceRequest{Kind: types.KindToken, Name: name}); err != nil {
				return err
			}
			fmt.Fprintln(e.stdio.Out, "Token has been deleted.")
			return nil
		}),
	}
	tokens.AddCommand(add, ls, rm)
	return tokens
}

// ciToken builds a github, gitlab or oidc token resource from tctl tokens add's flags;
// the server validates it again.
func ciToken(typ, bot, method, name string, rules []string, ghes, domain, issuer, aud string, exp *time.Time) (*types.Token, error) {
	if name == "" {
		return nil, common.UsageErrorf("--name is required for join method %s (the name tbot's onboarding.token gives)", method)
	}
	if len(rules) == 0 {
		return nil, common.UsageErrorf("give at least one --rule claim=glob[,claim=glob…] for join method %s", method)
	}
	t := &types.Token{Header: types.Header{Kind: types.KindToken, Version: types.V2, Metadata: types.Metadata{Name: name, Expires: exp}},
		Spec: types.TokenSpec{Roles: []string{typ}, BotName: bot, JoinMethod: method}}
	parsed := make([]map[string]string, 0, len(rules))
	for i, r := range rules {
		m := map[string]string{}
		for _, kv := range strings.Split(r, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, common.UsageErrorf("--rule %d: %q is not claim=glob", i+1, kv)
			}
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		parsed = append(parsed, m)
	}
	var err error
	switch method {
	case types.JoinMethodGitHub:
		g := &types.GitHubJoin{EnterpriseServerHost: ghes, Audience: aud}
		for i, m := range parsed {
			var r types.GitHubRule
			err = setFields(i, m, map[string]*string{"sub": &r.Sub, "repository": &r.Repository, "repository_owner": &r.RepositoryOwner,
				"workflow": &r.Workflow, "environment": &r.Environment, "actor": &r.Actor, "ref": &r.Ref, "ref_type": &r.RefType})
			if err != nil {
				return nil, err
			}
			g.Allow = append(g.Allow, r)
		}
		t.Spec.GitHub = g
	case types.JoinMethodGitLab:
		g := &types.GitLabJoin{Domain: domain, Audience: aud}
		for i, m := range parsed {
			var r types.GitLabRule
			err = setFields(i, m, map[string]*string{"sub": &r.Sub, "project_path": &r.ProjectPath, "namespace_path": &r.NamespacePath,
				"pipeline_source": &r.PipelineSource, "environment": &r.Environment, "ref": &r.Ref, "ref_type": &r.RefType,
				"ref_protected": &r.RefProtected, "user_login": &r.UserLogin})
			if err != nil {
				return nil, err
			}
			g.Allow = append(g.Allow, r)
		}
		t.Spec.GitLab = g
	case types.JoinMethodOIDC:
		o := &types.OIDCJoin{Issuer: issuer, Audience: aud}
		for _, m := range parsed {
			o.Allow = append(o.Allow, types.OIDCRule{Claims: m})
		}
		t.Spec.OIDC = o
	}
	if err := t.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return t, nil
}

func setFields(i int, m map[string]string, fields map[string]*string) error {
	for k, v := range m {
		f, ok := fields[k]
		if !ok {
			names := make([]string, 0, len(fields))
			for n := range fields {
				names = append(names, n)
			}
			sort.Strings(names)
			return common.UsageErrorf("--rule %d: unknown claim %q (want one of %s)", i+1, k, strings.Join(names, ", "))
		}
		*f = v
	}
	return nil
}

// kubeToken builds a kubernetes token of type static_jwks or oidc from tctl tokens
// add's flags.
func kubeToken(typ, bot, name, kubeType, jwksFile, issuer string, allow []string, exp *time.Time) (*types.Token, error) {
	if name == "" {
		return nil, common.UsageErrorf("--name is required for join method kubernetes")
	}
	k := &types.KubernetesJoin{Type: kubeType}
	for _, a := range allow {
		k.Allow = append(k.Allow, types.KubernetesJoinRule{ServiceAccount: a})
	}
	switch kubeType {
	case types.KubernetesJoinStaticJWKS:
		if jwksFile == "" {
			return nil, common.UsageErrorf("--jwks-file is required for --kubernetes-type=static_jwks (kubectl get --raw /openid/v1/jwks > FILE)")
		}
		data, err := os.ReadFile(jwksFile)
		if err != nil {
			return nil, fmt.Errorf("--jwks-file: %w", err)
		}
		k.StaticJWKS = &types.KubernetesStaticJWKS{JWKS: strings.TrimSpace(string(data))}
	case types.KubernetesJoinOIDC:
		k.OIDC = &types.KubernetesOIDC{Issuer: issuer}
	}
	t := &types.Token{Header: types.Header{Kind: types.KindToken, Version: types.V2, Metadata: types.Metadata{Name: name}},
		Spec: types.TokenSpec{Roles: []string{typ}, BotName: bot, JoinMethod: types.JoinMethodKubernetes, Kubernetes: k}}
	t.Metadata.Expires = exp
	if err := t.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	return t, nil
}
