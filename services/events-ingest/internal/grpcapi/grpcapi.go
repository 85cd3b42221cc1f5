// Package grpcapi is the gRPC transport of events-ingest: it turns requests of
// herald.events.v1.EventsIngestService and EventStatsService into calls of the events service
// and the statistics reader, and their errors into gRPC status codes, which no other package
// of the service deals in.
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
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
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

// maxInFlight bounds the chunks of one stream submitted but not yet answered: beyond it the
// stream stops reading, and gRPC flow control slows the client down.
const maxInFlight = 64

// chunk is one submitted stream message waiting for its answer.
type chunk struct {
	seq uint64
	p   *events.Pending
}

// StreamEvents implements eventsv1.EventsIngestServiceServer. Messages are submitted as they
// arrive and answered together once the client closes its side and every one is stored.
func (s *Server) StreamEvents(stream grpc.ClientStreamingServer[eventsv1.StreamEventsRequest, eventsv1.StreamEventsResponse]) error {
	ctx := stream.Context()
	chunks := make(chan chunk, maxInFlight)
	recvErr := make(chan error, 1)
	go func() {
		var n uint64
		recvErr <- s.receive(ctx, chunks, func() (string, string, []*eventsv1.Event, uint64, error) {
			msg, err := stream.Recv()
			n++
			// Errors name the message by its 0-based position.
			return msg.GetWorkspaceId(), msg.GetDomainId(), msg.GetEvents(), n - 1, err
		})
	}()
	var total events.Result
	for c := range chunks {
		r, err := c.p.Wait(ctx)
		if err != nil {
			return s.status(ctx, err)
		}
		total.Accepted += r.Accepted
		total.Duplicates += r.Duplicates
	}
	if err := <-recvErr; err != nil {
		return err
	}
	return stream.SendAndClose(&eventsv1.StreamEventsResponse{Accepted: count(total.Accepted), Duplicates: count(total.Duplicates)})
}

// IngestEventStream implements eventsv1.EventsIngestServiceServer: chunks are submitted as
// they arrive and acknowledged in order as they are stored. When a chunk fails (invalid, no
// room in the buffer, a failed write), the chunks before it are still answered, then the
// stream ends with the failure's status.
func (s *Server) IngestEventStream(stream grpc.BidiStreamingServer[eventsv1.IngestEventStreamRequest, eventsv1.IngestEventStreamResponse]) error {
	ctx := stream.Context()
	chunks := make(chan chunk, maxInFlight)
	recvErr := make(chan error, 1)
	go func() {
		var last uint64
		recvErr <- s.receive(ctx, chunks, func() (string, string, []*eventsv1.Event, uint64, error) {
			msg, err := stream.Recv()
			if err != nil {
				return "", "", nil, 0, err
			}
			if msg.GetSeq() <= last {
				return "", "", nil, 0, status.Errorf(codes.InvalidArgument,
					"seq: must be greater than the previous chunk's (%d), got %d", last, msg.GetSeq())
			}
			last = msg.GetSeq()
			return msg.GetWorkspaceId(), msg.GetDomainId(), msg.GetEvents(), msg.GetSeq(), nil
		})
	}()
	for c := range chunks {
		r, err := c.p.Wait(ctx)
		if err != nil {
			return s.status(ctx, err)
		}
		if err := stream.Send(&eventsv1.IngestEventStreamResponse{
			Seq: c.seq, Accepted: count(r.Accepted), Duplicates: count(r.Duplicates),
		}); err != nil {
			// Already a status: the client went away.
			return err
		}
	}
	return <-recvErr
}

// receive reads the messages of a stream with next until the client closes its side, submits
// each, and hands the pending answers to chunks in order; it closes chunks when it stops and
// returns the status that ends the stream, or nil after the client's last message. seq names
// the message in validation errors.
func (s *Server) receive(ctx context.Context, chunks chan<- chunk, next func() (ws, dom string, evs []*eventsv1.Event, seq uint64, err error)) error {
	defer close(chunks)
	for {
		ws, dom, evs, seq, err := next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			// Already a status (the client went away or sent garbage, or a bad seq).
			return err
		}
		t, err := tenancy.Scope(ctx, ws, dom)
		if err != nil {
			return s.status(ctx, err)
		}
		p, err := s.svc.Submit(t, inputs(evs), int(min(seq, math.MaxInt32))) //nolint:gosec // bounded by min
		if err != nil {
			return s.status(ctx, err)
		}
		select {
		case chunks <- chunk{seq: seq, p: p}:
		case <-ctx.Done():
			return s.status(ctx, ctx.Err())
		}
	}
}

// status maps the errors of the ingest RPCs to gRPC codes (StatsServer.status those of the
// statistics RPCs); what both meet is mapped once, by commonStatus.
func (s *Server) status(ctx context.Context, err error) error {
	var (
		verr *events.ValidationError
		ferr *events.BufferFullError
	)
	switch {
	case errors.As(err, &verr):
		return status.Error(codes.InvalidArgument, verr.Error())
	case errors.As(err, &ferr):
		// The delay travels as google.rpc.RetryInfo; the gateway turns it into Retry-After.
		st := status.New(codes.ResourceExhausted, "the ingest buffer is full: nothing of this message was stored, retry after the delay in RetryInfo")
		if with, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(ferr.RetryAfter)}); derr == nil {
			st = with
		}
		return st.Err()
	case errors.Is(err, events.ErrShuttingDown):
		return status.Error(codes.Unavailable, "events-ingest is shutting down: retry the unacknowledged events")
	case errors.Is(err, events.ErrNotStored):
		s.log.Error("write events", zap.Error(err))
		return status.Error(codes.Unavailable, "the events could not be stored: retry the unacknowledged events")
	}
	if st := commonStatus(ctx, err); st != nil {
		return st
	}
	s.log.Error("ingest events", zap.Error(err))
	return status.Error(codes.Internal, "internal error")
}

// commonStatus maps the errors every RPC of events-ingest can meet (authentication, tenant
// scope, the caller giving up); nil for any other error.
func commonStatus(ctx context.Context, err error) error {
	switch {
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
		return nil
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
