package app

import "github.com/heraldmail/herald/libs/process"

// DefaultAdminPort is the worker's admin listener unless ADMIN_PORT says otherwise.
const DefaultAdminPort = 3002

// Config is the worker's configuration.
type Config struct {
	// Common holds, among the rest, the secret the worker signs its service tokens with.
	process.Common

	// RecipientGRPCAddr is the recipient service, called by recipient_status jobs.
	RecipientGRPCAddr string `env:"RECIPIENT_GRPC_ADDR" default:"localhost:50052"`
}
