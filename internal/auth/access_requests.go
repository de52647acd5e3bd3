package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/access"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// access_requests.go holds access requests: a person asks for roles they do not hold (or
// for their search_as_roles on some resources only), reviewers approve or deny, and an
// approved request's roles go into a certificate that lives no longer than the request's
// access. Every step is audited, refusals included.

// accessRequestPrefix stores the requests, one JSON document each.
const accessRequestPrefix = "/access_requests/"

// Defaults and bounds of a request's lifetimes.
const (
	// DefaultRequestTTL is how long a request waits for review.
	DefaultRequestTTL = time.Hour
	// DefaultAccessDuration is how long approved access lasts when the request does not
	// say; the requested roles' max_session_ttl caps it.
	DefaultAccessDuration = time.Hour
	// minAccessDuration keeps requests meaningful (and tests quick).
	minAccessDuration = 10 * time.Second
	// accessRequestKeep is how long a request is kept after its access ended, for
	// `tsh request ls` and the audit trail; the audit log keeps the events longer.
	accessRequestKeep = 7 * 24 * time.Hour
)

// CreateAccessRequest is what `tsh request create` asks for.
type CreateAccessRequest struct {
	Roles     []string
	Resources []string // resource IDs, /CLUSTER/kind/KUBE[/NS[/POD]]
	Reason    string
	// MaxDuration asks for access shorter than the default.
	MaxDuration time.Duration
}

// CreateAccessRequest stores a pending request by the caller, after checking that the
// caller's roles let them request it.
func (s *Server) CreateAccessRequest(ctx context.Context, a Actor, req CreateAccessRequest) (_ *types.AccessRequest, err error) {
	defer func() {
		if err != nil {
			s.emit(ctx, a, audit.Event{Type: audit.AccessRequestCreate, Message: err.Error(),
				Fields: map[string]any{"roles": req.Roles, "resources": req.Resources}})
		}
	}()
	id := a.Identity
	switch {
	case id == nil || id.SystemRole != "":
		return nil, errs.AccessDeniedf("access requests are made by users")
	case id.IsBot():
		return nil, errs.AccessDeniedf("bots cannot make access requests: a bot's access is its roles' (elevated access for bots is not supported)")
	case id.KubeCluster != "":
		return nil, errs.AccessDeniedf("a certificate routed to kube cluster %q cannot make access requests; use your login certificate", id.KubeCluster)
	case len(req.Roles) == 0 && len(req.Resources) == 0:
		return nil, errs.BadParameterf("an access request needs --roles or --resource")
	case req.MaxDuration != 0 && req.MaxDuration < minAccessDuration:
		return nil, errs.BadParameterf("--max-duration %s is shorter than the minimum %s", req.MaxDuration, minAccessDuration)
	}
	ur, err := s.GetResource(ctx, types.KindUser, id.Username)
	if err != nil {
		return nil, err
	}
	user := ur.(*types.User)
	own := s.cache.Roles(user.Spec.Roles)
	ar := &types.AccessRequest{Header: types.Header{Kind: types.KindAccessRequest, Version: types.V3}}
	ar.Spec.User, ar.Spec.Reason = id.Username, req.Reason
	if len(req.Resources) > 0 {
		if len(req.Roles) > 0 {
			return nil, errs.BadParameterf("ask for --roles or for --resource, not both: a resource request grants your search_as_roles on those resources only")
		}
		all := make([]string, 0)
		for _, r := range s.cache.List(types.KindRole) {
			all = append(all, r.GetName())
		}
		sort.Strings(all)
		ar.Spec.Roles = access.SearchAsRoles(own, all)
		if len(ar.Spec.Roles) == 0 {
			return nil, errs.AccessDeniedf("resource requests need allow.request.search_as_roles, and none of your roles has it")
		}
		for _, v := range req.Resources {
			rid, err := types.ParseResourceID(v)
			if err != nil {
				return nil, errs.BadParameterf("%v", err)
			}
			if rid.Cluster != s.cfg.ClusterName {
				return nil, errs.BadParameterf("resource %q: cluster %q is not this cluster (%s)", v, rid.Cluster, s.cfg.ClusterName)
			}
			kc, err := s.cache.Get(types.KindKubeCluster, rid.KubeCluster)
			if err != nil {
				return nil, errs.NotFoundf("resource %q: kube cluster %q is not registered with this cluster (see tsh kube ls)", v, rid.KubeCluster)
			}
			checker, err := access.NewChecker(s.cache.Roles(ar.Spec.Roles), user.Spec.Traits)
			if err != nil {
				return nil, err
			}
			if _, err := checker.CheckCluster(kc.GetName(), kc.GetMetadata().Labels); err != nil {
				return nil, errs.AccessDeniedf("resource %q: your search_as_roles (%s) do not grant kube cluster %q", v, strings.Join(ar.Spec.Roles, ", "), rid.KubeCluster)
			}
			ar.Spec.Resources = append(ar.Spec.Resources, rid)
		}
	} else {
		for _, r := range req.Roles {
			if _, err := s.cache.Get(types.KindRole, r); err != nil {
				return nil, errs.NotFoundf("role %q does not exist", r)
			}
			if slices.Contains(user.Spec.Roles, r) {
				return nil, errs.BadParameterf("you already hold role %q", r)
			}
		}
		if err := access.CheckRequestable(own, req.Roles); err != nil {
			return nil, errs.AccessDeniedf("%v", err)
		}
		ar.Spec.Roles = slices.Clone(req.Roles)
	}
	ar.Spec.Approve, ar.Spec.Deny = access.Thresholds(own)
	dur := DefaultAccessDuration
	if req.MaxDuration > 0 {
		dur = req.MaxDuration
	}
	for _, r := range s.cache.Roles(ar.Spec.Roles) {
		if m := time.Duration(r.Spec.Options.MaxSessionTTL); m > 0 && m < dur {
			dur = m
		}
	}
	now := s.cfg.Clock.Now().UTC().Truncate(time.Second)
	ar.Spec.State, ar.Spec.Created = types.RequestPending, now
	ar.Spec.Expires = now.Add(min(DefaultRequestTTL, dur))
	ar.Spec.AccessExpires = now.Add(dur)
	name, err := randomHex(s.cfg.Rand, 16)
	if err != nil {
		return nil, err
	}
	ar.Metadata.Name = name[0:8] + "-" + name[8:12] + "-" + name[12:16] + "-" + name[16:20] + "-" + name[20:32]
	if err := s.putAccessRequest(ctx, ar, 0); err != nil {
		return nil, err
	}
	s.emit(ctx, a, audit.Event{Type: audit.AccessRequestCreate, Success: true, Message: req.Reason,
		Fields: map[string]any{"request_id": ar.GetName(), "roles": ar.Spec.Roles, "resources": resourceStrings(ar.Spec.Resources),
			"access_expires": ar.Spec.AccessExpires.Format(time.RFC3339)}})
	return ar, nil
}

func resourceStrings(ids []types.ResourceID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

// putAccessRequest stores ar: create-only when rev is 0, else compare-and-swap.
func (s *Server) putAccessRequest(ctx context.Context, ar *types.AccessRequest, rev int64) error {
	data, err := json.Marshal(ar)
	if err != nil {
		return err
	}
	it := backend.Item{Key: []byte(accessRequestPrefix + ar.GetName()), Value: data, Expires: ar.Spec.AccessExpires.Add(accessRequestKeep)}
	if rev == 0 {
		_, err = s.cfg.Backend.Create(ctx, it)
	} else {
		_, err = s.cfg.Backend.CompareAndSwap(ctx, it, rev)
	}
	return err
}

// accessRequest reads one request and its revision.
func (s *Server) accessRequest(ctx context.Context, name string) (*types.AccessRequest, int64, error) {
	it, err := s.cfg.Backend.Get(ctx, []byte(accessRequestPrefix+name))
	if errs.IsNotFound(err) {
		return nil, 0, errs.NotFoundf("access request %q not found", name)
	}
	if err != nil {
		return nil, 0, err
	}
	var ar types.AccessRequest
	if err := json.Unmarshal(it.Value, &ar); err != nil {
		return nil, 0, fmt.Errorf("decoding access request %s: %w", name, err)
	}
	ar.Metadata.Revision = it.Revision
	return &ar, it.Revision, nil
}

// mayReadRequest: the request's author, a reviewer of its roles, or access_request:read.
func (s *Server) mayReadRequest(a Actor, ar *types.AccessRequest, verb string) bool {
	id := a.Identity
	if id == nil {
		return false
	}
	if id.SystemRole == "" && !id.IsBot() && id.Username == ar.Spec.User {
		return true
	}
	if s.Authorize(a, types.KindAccessRequest, verb) == nil {
		return true
	}
	return id.SystemRole == "" && access.CheckReviewable(s.cache.Roles(id.Roles), ar.Spec.Roles) == nil
}

// ListAccessRequests returns the requests the caller may see, newest first: their own,
// those they may review, or all with access_request:list. state filters when set.
func (s *Server) ListAccessRequests(ctx context.Context, a Actor, state string) ([]*types.AccessRequest, error) {
	items, err := s.cfg.Backend.GetRange(ctx, []byte(accessRequestPrefix), 0)
	if err != nil {
		return nil, err
	}
	var out []*types.AccessRequest
	for _, it := range items {
		var ar types.AccessRequest
		if err := json.Unmarshal(it.Value, &ar); err != nil {
			return nil, fmt.Errorf("decoding access request %s: %w", it.Key, err)
		}
		if (state == "" || ar.Spec.State == state) && s.mayReadRequest(a, &ar, VerbList) {
			out = append(out, &ar)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Created.After(out[j].Spec.Created) })
	return out, nil
}

// GetAccessRequest returns one request the caller may see.
func (s *Server) GetAccessRequest(ctx context.Context, a Actor, name string) (*types.AccessRequest, error) {
	ar, _, err := s.accessRequest(ctx, name)
	if err != nil {
		return nil, err
	}
	if !s.mayReadRequest(a, ar, VerbRead) {
		// The same answer as for a request that does not exist: ids are not disclosed.
		return nil, errs.NotFoundf("access request %q not found", name)
	}
	return ar, nil
}

// DeleteAccessRequest deletes a request: the author's own, or with access_request:delete.
// Certificates already issued with it keep their roles until they expire; a lock on the
// request (tctl lock --access-request) ends them.
func (s *Server) DeleteAccessRequest(ctx context.Context, a Actor, name string) (err error) {
	defer func() {
		ev := audit.Event{Type: audit.AccessRequestDelete, Success: err == nil, Fields: map[string]any{"request_id": name}}
		if err != nil {
			ev.Message = err.Error()
		}
		s.emit(ctx, a, ev)
	}()
	ar, _, err := s.accessRequest(ctx, name)
	if err != nil {
		return err
	}
	id := a.Identity
	own := id != nil && id.SystemRole == "" && !id.IsBot() && id.Username == ar.Spec.User
	if !own {
		if err := s.Authorize(a, types.KindAccessRequest, VerbDelete); err != nil {
			return errs.AccessDeniedf("access request %q is %s's; deleting another user's request needs access_request:delete", name, ar.Spec.User)
		}
	}
	return s.cfg.Backend.Delete(ctx, []byte(accessRequestPrefix+name))
}

// ReviewAccessRequest records the caller's approval or denial. A reviewer needs
// allow.review_requests for every requested role; tctl (access_request:update) may
// resolve any request. Nobody reviews their own request, a resolved one, or one whose
// review window has passed.
func (s *Server) ReviewAccessRequest(ctx context.Context, a Actor, name string, approve bool, reason string) (_ *types.AccessRequest, err error) {
	state := types.RequestDenied
	if approve {
		state = types.RequestApproved
	}
	var ar *types.AccessRequest
	defer func() {
		ev := audit.Event{Type: audit.AccessRequestReview, Success: err == nil, Message: reason,
			Fields: map[string]any{"request_id": name, "review": state}}
		if ar != nil {
			ev.Fields["for_user"], ev.Fields["roles"], ev.Fields["state"] = ar.Spec.User, ar.Spec.Roles, ar.Spec.State
		}
		if err != nil {
			ev.Message = err.Error()
		}
		s.emit(ctx, a, ev)
	}()
	for range 5 { // compare-and-swap retries: reviews may race
		var rev int64
		ar, rev, err = s.accessRequest(ctx, name)
		if err != nil {
			return nil, err
		}
		id := a.Identity
		if id == nil {
			return nil, errs.AccessDeniedf("reviewing needs an identity")
		}
		if id.Username == ar.Spec.User && id.SystemRole == "" {
			return nil, errs.AccessDeniedf("you cannot review your own access request %q: another reviewer must", name)
		}
		if s.Authorize(a, types.KindAccessRequest, VerbUpdate) != nil {
			if id.IsBot() || id.SystemRole != "" {
				return nil, errs.AccessDeniedf("bots cannot review access requests")
			}
			if err := access.CheckReviewable(s.cache.Roles(id.Roles), ar.Spec.Roles); err != nil {
				return nil, errs.AccessDeniedf("%v", err)
			}
		}
		now := s.cfg.Clock.Now().UTC()
		if ar.Resolved() {
			return nil, errs.CompareFailedf("access request %q is already %s", name, strings.ToLower(ar.Spec.State))
		}
		if !now.Before(ar.Spec.Expires) {
			return nil, errs.AccessDeniedf("access request %q expired at %s without a decision; ask for a new one", name, ar.Spec.Expires.Format(time.RFC3339))
		}
		for _, r := range ar.Spec.Reviews {
			if r.Author == id.Username {
				return nil, errs.AlreadyExistsf("you have already reviewed access request %q (%s)", name, strings.ToLower(r.State))
			}
		}
		ar.Spec.Reviews = append(ar.Spec.Reviews, types.AccessReview{Author: id.Username, State: state, Reason: reason, Created: now.Truncate(time.Second)})
		switch {
		case ar.Count(types.RequestDenied) >= ar.Spec.Deny:
			ar.Spec.State, ar.Spec.ResolveReason = types.RequestDenied, reason
		case ar.Count(types.RequestApproved) >= ar.Spec.Approve:
			ar.Spec.State, ar.Spec.ResolveReason = types.RequestApproved, reason
		}
		err = s.putAccessRequest(ctx, ar, rev)
		if errs.IsCompareFailed(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return ar, nil
	}
	return nil, errs.CompareFailedf("access request %q changed while it was being reviewed; try again", name)
}

// grantedBy checks that every request of names may be used by the identity's user now
// and returns the roles and resources they grant and when the first of them ends.
func (s *Server) grantedBy(ctx context.Context, user string, names []string) (roles, resources []string, until time.Time, err error) {
	now := s.cfg.Clock.Now()
	for _, name := range names {
		ar, _, err := s.accessRequest(ctx, name)
		if errs.IsNotFound(err) {
			return nil, nil, time.Time{}, errs.AccessDeniedf("access request %q not found", name)
		}
		if err != nil {
			return nil, nil, time.Time{}, err
		}
		switch {
		case ar.Spec.User != user:
			return nil, nil, time.Time{}, errs.AccessDeniedf("access request %q belongs to another user", name)
		case ar.Spec.State == types.RequestDenied:
			return nil, nil, time.Time{}, errs.AccessDeniedf("access request %q was denied", name)
		case ar.Spec.State != types.RequestApproved:
			return nil, nil, time.Time{}, errs.AccessDeniedf("access request %q is not approved yet (%s)", name, strings.ToLower(ar.Spec.State))
		case !now.Before(ar.Spec.AccessExpires):
			return nil, nil, time.Time{}, errs.AccessDeniedf("the access granted by request %q ended at %s", name, ar.Spec.AccessExpires.Format(time.RFC3339))
		}
		for _, r := range ar.Spec.Roles {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
		resources = append(resources, resourceStrings(ar.Spec.Resources)...)
		if until.IsZero() || ar.Spec.AccessExpires.Before(until) {
			until = ar.Spec.AccessExpires
		}
	}
	return roles, resources, until, nil
}

// withRequests adds the approved requests' roles, resources and end to a certificate
// identity for user; it returns the time the certificate must end by.
func (s *Server) withRequests(ctx context.Context, id *tlsca.Identity, names []string) (time.Time, error) {
	if len(names) == 0 {
		return time.Time{}, nil
	}
	roles, resources, until, err := s.grantedBy(ctx, id.Username, names)
	if err != nil {
		return time.Time{}, err
	}
	for _, r := range roles {
		if !slices.Contains(id.Roles, r) {
			id.Roles = append(id.Roles, r)
		}
	}
	id.ActiveRequests = slices.Clone(names)
	id.AllowedResources = resources
	return until, nil
}
