package identityapi_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/heraldmail/herald/services/gateway/internal/flagadmin"
	"github.com/heraldmail/herald/services/gateway/internal/identity"
	"github.com/heraldmail/herald/services/gateway/internal/identityapi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestStatus(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("do something: %w", err) }
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{wrap(&identity.ValidationError{Field: "email", Reason: "is required"}), codes.InvalidArgument, "email is required"},
		{wrap(&identity.NotFoundError{Resource: "workspace"}), codes.NotFound, "workspace not found"},
		{wrap(identity.ErrInvalidCredentials), codes.Unauthenticated, "invalid email or password"},
		{wrap(identity.ErrTokenReused), codes.Unauthenticated, "the refresh token was already used or revoked; log in again"},
		{identity.ErrUnauthenticated, codes.Unauthenticated, "missing, invalid or expired credentials"},
		{wrap(identity.ErrPermissionDenied), codes.PermissionDenied, "your role in this workspace does not allow this operation"},
		{identity.ErrSessionRequired, codes.PermissionDenied, identity.ErrSessionRequired.Error()},
		{wrap(identity.ErrEmailTaken), codes.AlreadyExists, identity.ErrEmailTaken.Error()},
		{wrap(identity.ErrDomainTaken), codes.AlreadyExists, identity.ErrDomainTaken.Error()},
		{wrap(identity.ErrAlreadyMember), codes.AlreadyExists, identity.ErrAlreadyMember.Error()},
		{wrap(identity.ErrInvitationInvalid), codes.NotFound, identity.ErrInvitationInvalid.Error()},
		{wrap(flagadmin.ErrUnavailable), codes.Unavailable, flagadmin.ErrUnavailable.Error()},
	}
	for _, tt := range tests {
		st := status.Convert(identityapi.Status(t.Context(), zap.NewNop(), tt.err))
		require.Equal(t, tt.code, st.Code(), "%v", tt.err)
		require.Equal(t, tt.msg, st.Message(), "%v", tt.err)
	}

	st := status.Convert(identityapi.Status(t.Context(), zap.NewNop(), &identity.ValidationError{Field: "password", Reason: "must be at least 12 characters"}))
	require.Len(t, st.Details(), 1)
	br := st.Details()[0].(*errdetails.BadRequest)
	require.Equal(t, "password", br.GetFieldViolations()[0].GetField())

	st = status.Convert(identityapi.Status(t.Context(), zap.NewNop(), wrap(&identity.PlanLimitError{Limit: identity.LimitSeats, Max: 5})))
	require.Equal(t, codes.FailedPrecondition, st.Code())
	info := st.Details()[0].(*errdetails.ErrorInfo)
	require.Equal(t, identityapi.ReasonPlanLimitExceeded, info.GetReason())
	require.Equal(t, map[string]string{"limit": "seats", "max": "5"}, info.GetMetadata())

	st = status.Convert(identityapi.Status(t.Context(), zap.NewNop(), &identity.RateLimitedError{RetryAfter: 90 * time.Second}))
	require.Equal(t, codes.ResourceExhausted, st.Code())
	require.Equal(t, 90*time.Second, st.Details()[0].(*errdetails.RetryInfo).GetRetryDelay().AsDuration())
}

func TestStatusHidesInternalErrors(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.DebugLevel)
	err := identityapi.Status(t.Context(), zap.New(core), errors.New(`select user: ERROR: relation "identity.secret" does not exist`))
	st := status.Convert(err)
	require.Equal(t, codes.Internal, st.Code())
	require.Equal(t, "internal error", st.Message())
	require.Equal(t, 1, logs.FilterMessage("identity request failed").Len(), "the cause is logged")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.Equal(t, codes.Canceled, status.Code(identityapi.Status(ctx, zap.NewNop(), fmt.Errorf("query: %w", context.Canceled))))
}
