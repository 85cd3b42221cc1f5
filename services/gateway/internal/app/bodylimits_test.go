package app

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/gateway/internal/authz"
)

func TestRouteBodyLimitsNameRoutes(t *testing.T) {
	t.Parallel()
	routes := map[string]bool{}
	for _, rpc := range authz.RPCs() {
		for _, r := range rpc.Routes {
			routes[r.Method+" "+r.Path] = true
		}
	}
	for route, limit := range RouteBodyLimits() {
		require.True(t, routes[route], "%q is not a route the gateway serves", route)
		require.Positive(t, limit, route)
		require.LessOrEqual(t, limit, int64(maxServiceMessage), "%s: the service would refuse a body this large", route)
	}
}
