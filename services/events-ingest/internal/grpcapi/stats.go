package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
	"github.com/heraldmail/herald/services/events-ingest/internal/directory"
	"github.com/heraldmail/herald/services/events-ingest/internal/stats"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// StatsServiceName is the full name of the statistics service, as registered in
// grpc.health.v1.
const StatsServiceName = "herald.events.v1.EventStatsService"

// Directory tells whether a campaign or recipient exists in a tenant's domain
// (directory.Directory; its errors wrap directory.ErrNotFound and directory.ErrUnavailable).
type Directory interface {
	Campaign(ctx context.Context, t tenancy.Tenant, id uuid.UUID) error
	Recipient(ctx context.Context, t tenancy.Tenant, id uuid.UUID) error
}

// StatsServer implements eventsv1.EventStatsServiceServer.
type StatsServer struct {
	eventsv1.UnimplementedEventStatsServiceServer
	reader *stats.Reader
	dir    Directory
	now    func() time.Time
	log    *zap.Logger
}

// NewStats returns the statistics transport of reader; dir checks the campaigns and
// recipients asked about, now is the clock of the default date range.
func NewStats(reader *stats.Reader, dir Directory, now func() time.Time, log *zap.Logger) *StatsServer {
	return &StatsServer{reader: reader, dir: dir, now: now, log: log}
}

// RegisterStats adds s to srv.
func RegisterStats(srv grpc.ServiceRegistrar, s *StatsServer) {
	eventsv1.RegisterEventStatsServiceServer(srv, s)
}

// DefaultDays is the length of the daily series when the request gives no start date.
const DefaultDays = 30

// GetCampaignStats implements eventsv1.EventStatsServiceServer.
func (s *StatsServer) GetCampaignStats(ctx context.Context, req *eventsv1.GetCampaignStatsRequest) (*eventsv1.GetCampaignStatsResponse, error) {
	t, err := tenancy.Scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	id, err := uuid.Parse(req.GetCampaignId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "campaign_id: must be a UUID")
	}
	if err := s.dir.Campaign(ctx, t, id); err != nil {
		return nil, s.status(ctx, err)
	}
	c, err := s.reader.CampaignStats(ctx, t, id)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	r := c.Rates()
	out := &eventsv1.CampaignStats{
		CampaignId: id.String(),
		Sent:       c.Sent,
		Delivered:  c.Delivered,
		Opens:      &eventsv1.EngagementCounts{Total: c.Opens, Human: c.HumanOpens, Unique: c.UniqueOpens, UniqueHuman: c.UniqueHumanOpens},
		Clicks:     &eventsv1.EngagementCounts{Total: c.Clicks, Human: c.HumanClicks, Unique: c.UniqueClicks, UniqueHuman: c.UniqueHumanClicks},
		Bounces:    c.Bounces, Complaints: c.Complaints, Unsubscribes: c.Unsubscribes,
		Rates: &eventsv1.CampaignRates{
			DeliveryRate: r.Delivery, OpenRate: r.Open, HumanOpenRate: r.HumanOpen, ClickRate: r.Click,
			HumanClickRate: r.HumanClick, ClickToOpenRate: r.ClickToOpen, BounceRate: r.Bounce,
			ComplaintRate: r.Complaint, UnsubscribeRate: r.Unsubscribe,
		},
	}
	if !c.RefreshedAt.IsZero() {
		out.RefreshTime = timestamppb.New(c.RefreshedAt)
	}
	return &eventsv1.GetCampaignStatsResponse{Stats: out}, nil
}

// ListDailyStats implements eventsv1.EventStatsServiceServer.
func (s *StatsServer) ListDailyStats(ctx context.Context, req *eventsv1.ListDailyStatsRequest) (*eventsv1.ListDailyStatsResponse, error) {
	t, err := tenancy.Scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	end := s.now().UTC()
	if req.GetEndDate() != "" {
		if end, err = time.Parse(time.DateOnly, req.GetEndDate()); err != nil {
			return nil, status.Error(codes.InvalidArgument, "end_date: must be a date YYYY-MM-DD")
		}
	}
	start := end.AddDate(0, 0, -(DefaultDays - 1))
	if req.GetStartDate() != "" {
		if start, err = time.Parse(time.DateOnly, req.GetStartDate()); err != nil {
			return nil, status.Error(codes.InvalidArgument, "start_date: must be a date YYYY-MM-DD")
		}
	}
	days, err := s.reader.DailySeries(ctx, t, start, end)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := make([]*eventsv1.DailyStats, len(days))
	for i, d := range days {
		out[i] = &eventsv1.DailyStats{
			Date: d.Day.Format(time.DateOnly), Total: d.Total, Sent: d.Sent, Delivered: d.Delivered,
			Opens: d.Opens, HumanOpens: d.HumanOpens, Clicks: d.Clicks, HumanClicks: d.HumanClicks,
			Bounces: d.Bounces, Complaints: d.Complaints, Unsubscribes: d.Unsubscribes,
		}
	}
	return &eventsv1.ListDailyStatsResponse{Days: out}, nil
}

// ListRecipientEvents implements eventsv1.EventStatsServiceServer.
func (s *StatsServer) ListRecipientEvents(ctx context.Context, req *eventsv1.ListRecipientEventsRequest) (*eventsv1.ListRecipientEventsResponse, error) {
	t, err := tenancy.Scope(ctx, req.GetWorkspaceId(), req.GetDomainId())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	id, err := uuid.Parse(req.GetRecipientId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "recipient_id: must be a UUID")
	}
	// The page size is checked before the recipient is looked up; the page token, by the
	// reader, after.
	if !stats.ValidPageSize(int(req.GetPageSize())) {
		return nil, status.Error(codes.InvalidArgument, fmt.Sprintf("page_size: must be between 1 and %d (0 means %d)", stats.MaxPageSize, stats.DefaultPageSize))
	}
	if err := s.dir.Recipient(ctx, t, id); err != nil {
		return nil, s.status(ctx, err)
	}
	page, err := s.reader.Timeline(ctx, t, id, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := make([]*eventsv1.RecipientEvent, len(page.Events))
	for i, e := range page.Events {
		out[i] = &eventsv1.RecipientEvent{
			Id: e.ID.String(), Type: wireTypes[e.Type], OccurTime: timestamppb.New(e.OccurredAt), Machine: e.Machine,
			UserAgent: e.UserAgent, Ip: e.IP, Url: e.URL, BounceClass: e.BounceClass,
		}
		if e.CampaignID.Valid {
			out[i].CampaignId = e.CampaignID.UUID.String()
		}
	}
	return &eventsv1.ListRecipientEventsResponse{Events: out, NextPageToken: page.Next}, nil
}

// wireTypes is eventTypes the other way round, by the stored type name.
var wireTypes = func() map[string]eventsv1.EventType {
	m := make(map[string]eventsv1.EventType, len(eventTypes))
	for wire, typ := range eventTypes {
		m[string(typ)] = wire
	}
	return m
}()

// status is the statistics service's mapping from errors to gRPC codes.
func (s *StatsServer) status(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, stats.ErrInvalid):
		return status.Error(codes.InvalidArgument, strings.TrimSuffix(err.Error(), ": "+stats.ErrInvalid.Error()))
	case errors.Is(err, directory.ErrNotFound):
		// "campaign not found": the same words for another tenant's id and a made-up one.
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, directory.ErrUnavailable):
		s.log.Warn("look up an object of the request", zap.Error(err))
		return status.Error(codes.Unavailable, "the owning service did not answer: retry later")
	}
	if st := commonStatus(ctx, err); st != nil {
		return st
	}
	s.log.Error("read event statistics", zap.Error(err))
	return status.Error(codes.Internal, "internal error")
}
