package app

import (
	"time"

	"github.com/heraldmail/herald/libs/config"
	"github.com/heraldmail/herald/libs/process"
)

// DefaultAdminPort is the worker's admin listener unless ADMIN_PORT says otherwise.
const DefaultAdminPort = 3002

// Config is the worker's configuration.
type Config struct {
	// Common holds, among the rest, the secret the worker signs its service tokens with.
	process.Common

	// RecipientGRPCAddr is the recipient service, called by recipient_status jobs.
	RecipientGRPCAddr string `env:"RECIPIENT_GRPC_ADDR" default:"localhost:50052"`

	// ImportBatchSize is the number of rows an import job sends per batch.
	ImportBatchSize int `env:"IMPORT_BATCH_SIZE" default:"5000" min:"1" max:"50000"`
	// ImportAttemptDuration is how long one attempt of an import job works before it hands
	// over to the next attempt; the job's River timeout is this plus 30s.
	ImportAttemptDuration time.Duration `env:"IMPORT_ATTEMPT_DURATION" default:"1m"`
	// JobRescueAfter is how long a job may stay running past its timeout before River counts
	// its worker as dead and runs the job again (River's RescueStuckJobsAfter); at least 1m.
	JobRescueAfter time.Duration `env:"JOB_RESCUE_AFTER" default:"1h"`
	// EventRollupInterval is how often the daily rollup of events and the campaigns' unique
	// counts are recounted: how stale the statistics may be.
	EventRollupInterval time.Duration `env:"EVENT_ROLLUP_INTERVAL" default:"15m"`
}

// Validate checks what River itself would refuse at start-up, with the variable's name.
func (c *Config) Validate() error {
	if c.JobRescueAfter < time.Minute {
		return &config.Error{Var: "JOB_RESCUE_AFTER", Reason: "must be at least 1m (River's job timeout)"}
	}
	if c.EventRollupInterval < time.Second || c.EventRollupInterval > 24*time.Hour {
		return &config.Error{Var: "EVENT_ROLLUP_INTERVAL", Reason: "must be between 1s and 24h"}
	}
	return nil
}
