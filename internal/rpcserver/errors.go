package rpcserver

import (
	"context"
	"errors"

	"github.com/portbroker/portbroker/broker"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toStatus maps a broker error to its gRPC status: the one place where
// error kinds become codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var fe *broker.FieldError
	if errors.As(err, &fe) {
		// The message starts with the field, so clients can name it.
		return status.Error(codes.InvalidArgument, fe.Error())
	}
	code := codes.Internal
	switch {
	case errors.Is(err, broker.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, broker.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, broker.ErrExhausted):
		code = codes.ResourceExhausted
	case errors.Is(err, broker.ErrPortHeld), errors.Is(err, broker.ErrMismatch):
		code = codes.FailedPrecondition
	case errors.Is(err, broker.ErrNameTaken):
		code = codes.AlreadyExists
	case errors.Is(err, broker.ErrPermission):
		code = codes.PermissionDenied
	case errors.Is(err, broker.ErrConflict):
		code = codes.Aborted
	case errors.Is(err, broker.ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, broker.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}
