package client

import (
	"context"

	"google.golang.org/grpc"
)

// The interceptors run every RPC's error through mapError, so that RPC()
// callers and the typed methods see the same errors.

func (c *Client) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return c.mapError(invoker(ctx, method, req, reply, cc, opts...))
}

func (c *Client) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, c.mapError(err)
	}
	return &mappedStream{ClientStream: s, c: c}, nil
}

type mappedStream struct {
	grpc.ClientStream
	c *Client
}

func (s *mappedStream) SendMsg(m any) error { return s.c.mapError(s.ClientStream.SendMsg(m)) }

func (s *mappedStream) RecvMsg(m any) error { return s.c.mapError(s.ClientStream.RecvMsg(m)) }
