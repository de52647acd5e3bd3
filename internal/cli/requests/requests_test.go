package requests

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/testenv/golden"
	"github.com/keyport/keyport/internal/types"
)

var now = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func sample() []*types.AccessRequest {
	mk := func(id, user, state string, roles []string, res []types.ResourceID, reason string, created time.Time, reviews ...types.AccessReview) *types.AccessRequest {
		ar := &types.AccessRequest{Header: types.Header{Kind: types.KindAccessRequest, Version: types.V3, Metadata: types.Metadata{Name: id}}}
		ar.Spec = types.AccessRequestSpec{User: user, Roles: roles, Resources: res, Reason: reason, State: state, Created: created,
			Expires: created.Add(time.Hour), AccessExpires: created.Add(time.Hour), Approve: 1, Deny: 1, Reviews: reviews}
		return ar
	}
	return []*types.AccessRequest{
		mk("0b1b2b3b-0000-4000-8000-000000000001", "alice", types.RequestApproved, []string{"example-role"}, nil, "deploy fix\nfor INC-7",
			now.Add(-10*time.Minute), types.AccessReview{Author: "bob", State: types.RequestApproved, Reason: "go ahead", Created: now.Add(-5 * time.Minute)}),
		mk("0b1b2b3b-0000-4000-8000-000000000002", "alice", types.RequestPending, []string{"example-role"},
			[]types.ResourceID{{Cluster: "keyport.local", Kind: types.ResourcePod, KubeCluster: "example-k8s-cluster", Namespace: "default", Name: "web-0"}},
			"look at web-0", now.Add(-2*time.Minute)),
		mk("0b1b2b3b-0000-4000-8000-000000000003", "eve", types.RequestPending, []string{"example-role"}, nil, "", now.Add(-2*time.Hour)),
	}
}

type fakeAPI struct{ list []*types.AccessRequest }

func (f fakeAPI) ListAccessRequests(context.Context, *pb.ListAccessRequestsRequest, ...grpc.CallOption) (*pb.ListResourcesResponse, error) {
	out := &pb.ListResourcesResponse{}
	for _, ar := range f.list {
		data, _ := json.Marshal(ar)
		out.Resources = append(out.Resources, &pb.Resource{Kind: types.KindAccessRequest, Json: data})
	}
	return out, nil
}
func (f fakeAPI) GetAccessRequest(context.Context, *pb.GetAccessRequestRequest, ...grpc.CallOption) (*pb.Resource, error) {
	data, _ := json.Marshal(f.list[0])
	return &pb.Resource{Json: data}, nil
}
func (f fakeAPI) ReviewAccessRequest(context.Context, *pb.ReviewAccessRequestRequest, ...grpc.CallOption) (*pb.Resource, error) {
	data, _ := json.Marshal(f.list[0])
	return &pb.Resource{Json: data}, nil
}

// The request screens people read: tsh/tctl request ls, show, and a review's outcome.
func TestRequestScreens(t *testing.T) {
	api := fakeAPI{sample()}
	ctx := context.Background()
	var ls bytes.Buffer
	if err := List(ctx, api, &ls, "", "text", now); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "ls.txt"), ls.Bytes())
	var show bytes.Buffer
	if err := Show(ctx, api, &show, "x", "text", now); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "show.txt"), show.Bytes())
	var review bytes.Buffer
	if err := Review(ctx, api, &review, "x", true, "", now); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "review.txt"), review.Bytes())
	var created bytes.Buffer
	Print(&created, sample()[1], now)
	golden.Check(t, filepath.Join("testdata", "created-resource-request.txt"), created.Bytes())
	if err := List(ctx, api, &bytes.Buffer{}, "granted", "text", now); err == nil {
		t.Error("an unknown --state was accepted")
	}
}
