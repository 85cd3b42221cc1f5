package app

import (
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/process"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
)

// DefaultAdminPort is the admin listener of events-ingest unless ADMIN_PORT says otherwise.
const DefaultAdminPort = 9053

// Config is the configuration of events-ingest.
type Config struct {
	process.Common

	// GRPCPort is the listener of herald.events.v1.EventsIngestService.
	GRPCPort int `env:"GRPC_PORT" default:"50053" min:"1" max:"65535"`

	// CampaignGRPCAddr and RecipientGRPCAddr are the services asked whether a campaign or
	// recipient exists before its statistics or timeline are answered.
	CampaignGRPCAddr  string `env:"CAMPAIGN_GRPC_ADDR" default:"localhost:50051"`
	RecipientGRPCAddr string `env:"RECIPIENT_GRPC_ADDR" default:"localhost:50052"`

	Ingest Ingest
}

// Ingest tunes the write buffer (events.BatcherConfig).
type Ingest struct {
	// BatchSize is the number of events of one domain written in one transaction at most.
	BatchSize int `env:"INGEST_BATCH_SIZE" default:"2000" min:"1" max:"50000"`
	// FlushInterval is the longest an event waits for its batch to fill.
	FlushInterval time.Duration `env:"INGEST_FLUSH_INTERVAL" default:"10ms"`
	// BufferEvents is the capacity of the buffer; callers beyond it get RESOURCE_EXHAUSTED. It
	// holds at least one message of the largest size (events.MaxBatch), which would otherwise
	// never fit.
	BufferEvents int `env:"INGEST_BUFFER_EVENTS" default:"100000" min:"1000" max:"10000000"`
	// Writers is the number of batches written in parallel.
	Writers int `env:"INGEST_WRITERS" default:"4" min:"1" max:"64"`
	// RetryAfter is the delay suggested to callers turned away by a full buffer.
	RetryAfter time.Duration `env:"INGEST_RETRY_AFTER" default:"1s"`
}

// Validate checks the settings against each other.
func (i *Ingest) Validate() error {
	if i.FlushInterval < time.Millisecond || i.FlushInterval > time.Minute {
		return &config.Error{Var: "INGEST_FLUSH_INTERVAL", Reason: "must be between 1ms and 1m"}
	}
	if i.RetryAfter < time.Second || i.RetryAfter > time.Hour {
		return &config.Error{Var: "INGEST_RETRY_AFTER", Reason: "must be between 1s and 1h (Retry-After counts whole seconds)"}
	}
	if i.BatchSize > i.BufferEvents {
		return &config.Error{Var: "INGEST_BATCH_SIZE", Reason: "must not be larger than INGEST_BUFFER_EVENTS"}
	}
	return nil
}

// batcher is the events.BatcherConfig of these settings.
func (i Ingest) batcher() events.BatcherConfig {
	return events.BatcherConfig{
		BatchSize:     i.BatchSize,
		FlushInterval: i.FlushInterval,
		Capacity:      i.BufferEvents,
		Writers:       i.Writers,
		RetryAfter:    i.RetryAfter,
	}
}
