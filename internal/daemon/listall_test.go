//go:build unix

package daemon

import (
	"context"
	"fmt"

	brokerpb "github.com/portbroker/portbroker/proto/portbroker/v1"
	"google.golang.org/grpc"
)

// listAll is ListLeases followed to its last page, as one response.
func listAll(ctx context.Context, rpc brokerpb.BrokerServiceClient, req *brokerpb.ListLeasesRequest, opts ...grpc.CallOption) (*brokerpb.ListLeasesResponse, error) {
	all := &brokerpb.ListLeasesResponse{}
	req = &brokerpb.ListLeasesRequest{Namespace: req.GetNamespace(), PageSize: req.GetPageSize()}
	for range 1000 {
		resp, err := rpc.ListLeases(ctx, req, opts...)
		if err != nil {
			return nil, err
		}
		all.Leases = append(all.Leases, resp.GetLeases()...)
		if resp.GetNextPageToken() == "" {
			return all, nil
		}
		req.PageToken = resp.GetNextPageToken()
	}
	return nil, fmt.Errorf("list leases: more than 1000 pages")
}
