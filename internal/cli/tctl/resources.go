package tctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

func (e *env) createCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "create FILE",
		Short: "Create resources from a YAML file (- for stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, data, err := readInput(args[0], e.stdio.In)
			if err != nil {
				return err
			}
			// Decode everything before writing anything: a bad document leaves no trace.
			rs, err := types.Decode(name, data)
			if err != nil {
				return err
			}
			clt, err := e.client(cmd.Context())
			if err != nil {
				return err
			}
			for _, r := range rs {
				p, err := toPB(r)
				if err != nil {
					return err
				}
				resp, err := clt.CreateResource(cmd.Context(), &pb.CreateResourceRequest{Resource: p, Force: force})
				if err != nil {
					return err
				}
				verb := "updated"
				if resp.GetCreated() {
					verb = "created"
				}
				shown := r.GetName()
				if r.GetKind() == types.KindToken {
					shown = "(hidden)"
				}
				fmt.Fprintf(e.stdio.Out, "%s '%s' has been %s\n", r.GetKind(), shown, verb)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "overwrite resources that exist")
	return cmd
}

func readInput(arg string, stdin io.Reader) (string, []byte, error) {
	if arg == "-" {
		data, err := io.ReadAll(stdin)
		return "stdin", data, err
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		if os.IsNotExist(err) {
			return "", nil, errs.NotFoundf("file %s does not exist", arg)
		}
		return "", nil, err
	}
	return filepath.Base(arg), data, nil
}

func toPB(r types.Resource) (*pb.Resource, error) {
	data, err := types.EncodeJSON(r)
	if err != nil {
		return nil, err
	}
	return &pb.Resource{Kind: r.GetKind(), Json: data, Revision: r.GetMetadata().Revision}, nil
}

func fromPB(p *pb.Resource) (types.Resource, error) {
	r, err := types.UnmarshalStorage(p.GetJson())
	if err != nil {
		return nil, err
	}
	r.GetMetadata().Revision = p.GetRevision()
	return r, nil
}

// parseRef reads KIND[/NAME].
func parseRef(s string, needName bool) (kind, name string, err error) {
	k, n, _ := strings.Cut(s, "/")
	if k == "all" && !needName {
		return "all", "", nil
	}
	kind, ok := types.ParseKind(k)
	if !ok {
		return "", "", common.UsageErrorf("unknown resource kind %q (want one of %s)", k, strings.Join(types.Kinds(), ", "))
	}
	if needName && n == "" {
		return "", "", common.UsageErrorf("name the resource as %s/NAME", kind)
	}
	return kind, n, nil
}

func (e *env) getCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "get KIND[/NAME]",
		Short: "Print resources as YAML (or JSON); KIND may be plural, or all",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, cmd *cobra.Command, args []string) error {
			kind, name, err := parseRef(args[0], false)
			if err != nil {
				return err
			}
			if format != "yaml" && format != "json" && format != "text" {
				return common.UsageErrorf("--format must be yaml, json or text")
			}
			var rs []types.Resource
			kinds := []string{kind}
			if kind == "all" {
				kinds = []string{types.KindRole, types.KindUser, types.KindBot, types.KindToken, types.KindLock}
			}
			for _, k := range kinds {
				if name != "" {
					p, err := clt.GetResource(ctx, &pb.GetResourceRequest{Kind: k, Name: name})
					if err != nil {
						return err
					}
					r, err := fromPB(p)
					if err != nil {
						return err
					}
					rs = append(rs, r)
					continue
				}
				list, err := clt.ListResources(ctx, &pb.ListResourcesRequest{Kind: k})
				if err != nil {
					return err
				}
				for _, p := range list.GetResources() {
					r, err := fromPB(p)
					if err != nil {
						return err
					}
					rs = append(rs, r)
				}
			}
			return printResources(e.stdio.Out, rs, format)
		}),
	}
	cmd.Flags().StringVar(&format, "format", "yaml", "yaml, json or text")
	return cmd
}

func printResources(w io.Writer, rs []types.Resource, format string) error {
	switch format {
	case "json":
		out := make([]json.RawMessage, 0, len(rs))
		for _, r := range rs {
			data, err := types.EncodeJSON(r)
			if err != nil {
				return err
			}
			out = append(out, data)
		}
		data, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	case "text":
		var rows [][]string
		for _, r := range rs {
			rows = append(rows, []string{r.GetKind(), r.GetName(), r.GetMetadata().Description})
		}
		table(w, []string{"Kind", "Name", "Description"}, rows)
		return nil
	default:
		data, err := types.EncodeAll(rs)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
}

func (e *env) rmCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm KIND/NAME",
		Aliases: []string{"del"},
		Short:   "Delete a resource",
		Args:    cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			kind, name, err := parseRef(args[0], true)
			if err != nil {
				return err
			}
			if _, err := clt.DeleteResource(ctx, &pb.DeleteResourceRequest{Kind: kind, Name: name}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdio.Out, "%s '%s' has been deleted\n", kind, name)
			return nil
		}),
	}
}

func (e *env) editCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "edit KIND/NAME",
		Short: "Edit a resource with $EDITOR; refused if someone changed it meanwhile",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			kind, name, err := parseRef(args[0], true)
			if err != nil {
				return err
			}
			p, err := clt.GetResource(ctx, &pb.GetResourceRequest{Kind: kind, Name: name})
			if err != nil {
				return err
			}
			r, err := fromPB(p)
			if err != nil {
				return err
			}
			before, err := types.Encode(r)
			if err != nil {
				return err
			}
			dir, err := os.MkdirTemp("", "tctl-edit-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			file := filepath.Join(dir, kind+"-"+name+".yaml")
			if err := os.WriteFile(file, before, 0o600); err != nil {
				return err
			}
			editor := e.stdio.Getenv("EDITOR")
			if editor == "" {
				editor = "vi"
			}
			ed := exec.CommandContext(ctx, "sh", "-c", editor+` "$1"`, "sh", file)
			ed.Stdin, ed.Stdout, ed.Stderr = e.stdio.In, e.stdio.Out, e.stdio.Err
			if err := ed.Run(); err != nil {
				return fmt.Errorf("editor %q failed: %w", editor, err)
			}
			after, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			if bytes.Equal(before, after) {
				fmt.Fprintln(e.stdio.Out, "edit canceled, no changes made")
				return nil
			}
			rs, err := types.Decode(filepath.Base(file), after)
			if err != nil {
				return err
			}
			if len(rs) != 1 || rs[0].GetKind() != kind || rs[0].GetName() != name {
				return errs.BadParameterf("the edited file must still hold exactly %s/%s", kind, name)
			}
			np, err := toPB(rs[0])
			if err != nil {
				return err
			}
			if _, err := clt.CreateResource(ctx, &pb.CreateResourceRequest{Resource: np, ExpectedRevision: p.GetRevision()}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdio.Out, "%s '%s' has been updated\n", kind, name)
			return nil
		}),
	}
}
