package tctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/sso"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// ssoCmd is `tctl sso test NAME`.
func (e *env) ssoCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sso", Short: "Single sign-on connectors"}
	var browser string
	test := &cobra.Command{
		Use:   "test NAME",
		Short: "Sign in through a connector and show the user, roles and traits it maps to, issuing nothing (needs oidc:read or github:read)",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			name := args[0]
			kind := ""
			for _, k := range []string{types.KindOIDC, types.KindGithub} {
				if _, err := clt.GetResource(ctx, &pb.GetResourceRequest{Kind: k, Name: name}); err == nil {
					kind = k
					break
				} else if !errs.IsNotFound(err) {
					return err
				}
			}
			if kind == "" {
				return errs.NotFoundf("no oidc or github connector named %q (see tctl get oidc, tctl get github)", name)
			}
			res, err := sso.Run(ctx, clt, sso.Options{Kind: kind, Connector: name, Test: true, Browser: browser, Out: e.stdio.Err})
			if err != nil {
				return fmt.Errorf("SSO test failed: %w", err)
			}
			return sso.FormatTest(e.stdio.Out, kind, name, res.Mapping)
		}),
	}
	test.Flags().StringVar(&browser, "browser", "", "none prints the sign-in URL without opening a browser")
	cmd.AddCommand(test)
	return cmd
}
