package app

import "github.com/heraldmail/herald/libs/process"

// DefaultAdminPort is the admin listener of events-ingest unless ADMIN_PORT says otherwise.
const DefaultAdminPort = 9053

// Config is the configuration of events-ingest.
type Config struct {
	process.Common

	// GRPCPort is the listener of herald.events.v1.EventsIngestService.
	GRPCPort int `env:"GRPC_PORT" default:"50053" min:"1" max:"65535"`
}
