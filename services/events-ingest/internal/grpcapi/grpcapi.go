// Package grpcapi is the gRPC transport of events-ingest: it turns requests of
// herald.events.v1.EventsIngestService into calls of the events service and its errors into
// gRPC status codes, in one place.
package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/heraldmail/herald/libs/tenancy"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ServiceName is the full name of the service, as registered in grpc.health.v1.
const ServiceName = "herald.events.v1.EventsIngestService"

// Server implements eventsv1.EventsIngestServiceServer.
type Server struct {
	eventsv1.UnimplementedEventsIngestServiceServer
	svc *events.Service
	log *zap.Logger
}

// New returns the transport of svc. log receives the causes of internal errors, which clients
// never see.
func New(svc *events.Service, log *zap.Logger) *Server {
	return &Server{svc: svc, log: log}
}

// Register adds s to srv.
func Register(srv grpc.ServiceRegistrar, s *Server) {
	eventsv1.RegisterEventsIngestServiceServer(srv, s)
}

// IngestEvents implements eventsv1.EventsIngestServiceServer.
func (s *Server) IngestEvents(ctx context.Context, req *eventsv1.IngestEventsRequest) (*eventsv1.IngestEventsResponse, error) {
	t, err := tenancy.Scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	res, err := s.svc.Ingest(ctx, t, inputs(req.GetEvents()))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return &eventsv1.IngestEventsResponse{Accepted: count(res.Accepted), Duplicates: count(res.Duplicates)}, nil
}

// StreamEvents implements eventsv1.EventsIngestServiceServer. Every message is written as it
// fills transactions, so a slow database slows the reads of the stream (backpressure through
// gRPC flow control) rather than buffering without bound.
func (s *Server) StreamEvents(stream grpc.ClientStreamingServer[eventsv1.StreamEventsRequest, eventsv1.StreamEventsResponse]) error {
	ctx := stream.Context()
	st := s.svc.NewStream()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// Already a status (the client went away or sent garbage).
			return err
		}
		t, err := tenancy.Scope(ctx, msg.GetWorkspaceId(), msg.GetDomainId())
		if err != nil {
			return s.status(ctx, err)
		}
		if err := st.Add(ctx, t, inputs(msg.GetEvents())); err != nil {
			return s.status(ctx, err)
		}
	}
	res, err := st.Close(ctx)
	if err != nil {
		return s.status(ctx, err)
	}
	return stream.SendAndClose(&eventsv1.StreamEventsResponse{Accepted: count(res.Accepted), Duplicates: count(res.Duplicates)})
}

// status is the one mapping from errors to gRPC codes.
func (s *Server) status(ctx context.Context, err error) error {
	var verr *events.ValidationError
	switch {
	case errors.As(err, &verr):
		return status.Error(codes.InvalidArgument, verr.Error())
	case errors.Is(err, tenancy.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, "missing or invalid bearer token")
	case errors.Is(err, tenancy.ErrOutOfScope):
		// A route outside the partition a narrowed token was issued for: answered like a
		// domain that does not exist, so ids do not leak existence.
		return status.Error(codes.NotFound, "domain not found")
	case errors.Is(err, tenancy.ErrInvalidTenant):
		// Scope's error starts with the field name.
		return status.Error(codes.InvalidArgument, fmt.Sprintf("%v: must be a UUID", err))
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	default:
		s.log.Error("ingest events", zap.Error(err))
		return status.Error(codes.Internal, "internal error")
	}
}

var eventTypes = map[eventsv1.EventType]events.Type{
	eventsv1.EventType_EVENT_TYPE_SENT:        events.TypeSent,
	eventsv1.EventType_EVENT_TYPE_DELIVERED:   events.TypeDelivered,
	eventsv1.EventType_EVENT_TYPE_OPEN:        events.TypeOpen,
	eventsv1.EventType_EVENT_TYPE_CLICK:       events.TypeClick,
	eventsv1.EventType_EVENT_TYPE_BOUNCE:      events.TypeBounce,
	eventsv1.EventType_EVENT_TYPE_COMPLAINT:   events.TypeComplaint,
	eventsv1.EventType_EVENT_TYPE_UNSUBSCRIBE: events.TypeUnsubscribe,
}

func inputs(in []*eventsv1.Event) []events.Input {
	out := make([]events.Input, len(in))
	for i, e := range in {
		out[i] = events.Input{
			ID:          e.GetId(),
			Type:        eventTypes[e.GetType()], // unspecified and unknown values map to "", rejected
			CampaignID:  e.GetCampaignId(),
			RecipientID: e.GetRecipientId(),
			UserAgent:   e.GetUserAgent(),
			IP:          e.GetIp(),
			URL:         e.GetUrl(),
			BounceClass: e.GetBounceClass(),
		}
		if ts := e.GetOccurTime(); ts != nil && ts.IsValid() {
			out[i].OccurredAt = ts.AsTime()
		}
	}
	return out
}

// count converts a total to the wire type; a stream long enough to overflow it reports the
// maximum.
func count(n int) int32 {
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n) //nolint:gosec // bounded by the check above
}
