package app

import (
	"net/url"
	"strings"

	"github.com/heraldmail/herald/libs/config"
)

// DefaultAdminPort is the gateway's admin listener unless ADMIN_PORT says otherwise.
const DefaultAdminPort = 9001

// Config is the gateway's configuration.
type Config struct {
	config.Base
	// Database is the pool of the identity schema the gateway owns; for now it serves the
	// health checks.
	config.Database
	config.Redis
	config.Auth

	// Port is the public REST listener.
	Port int `env:"PORT" default:"3001" min:"1" max:"65535"`
	// FrontendURL is the origin of the web front end, the only one CORS allows.
	FrontendURL string `env:"FRONTEND_URL" default:"http://localhost:3000"`
	// Addresses of the services the API is proxied to.
	RecipientGRPCAddr string `env:"RECIPIENT_GRPC_ADDR" default:"localhost:50052"`
	CampaignGRPCAddr  string `env:"CAMPAIGN_GRPC_ADDR" default:"localhost:50051"`
	EventsGRPCAddr    string `env:"EVENTS_GRPC_ADDR" default:"localhost:50053"`
	// HTTPBodyLimit is the largest request body accepted, in bytes.
	HTTPBodyLimit int64 `env:"HTTP_BODY_LIMIT" default:"1048576" min:"1" max:"1073741824"`
}

// Validate checks that FRONTEND_URL is an origin (scheme and host, nothing else) and keeps
// it in the form browsers send in the Origin header.
func (c *Config) Validate() error {
	u, err := url.Parse(strings.TrimSpace(c.FrontendURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return &config.Error{Var: "FRONTEND_URL", Reason: "must be an origin such as https://app.example.com (scheme and host, no path)"}
	}
	c.FrontendURL = strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
	return nil
}
