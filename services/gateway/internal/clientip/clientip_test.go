package clientip_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/gateway/internal/clientip"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	r, err := clientip.New([]string{"10.0.0.0/8", "192.0.2.7", " "})
	require.NoError(t, err)
	tests := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer, header ignored", "203.0.113.5:4000", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted peer, no header", "10.1.2.3:4000", nil, "10.1.2.3"},
		{"trusted peer, client in header", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted wins over forged entries", "10.1.2.3:4000", []string{"1.1.1.1, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several headers", "192.0.2.7:4000", []string{"1.1.1.1", "198.51.100.2, 10.0.0.1"}, "198.51.100.2"},
		{"all hops trusted", "10.1.2.3:4000", []string{"10.0.0.2, 10.0.0.1"}, "10.0.0.2"},
		{"garbage stops the walk", "10.1.2.3:4000", []string{"198.51.100.1, nonsense, 10.0.0.1"}, "10.0.0.1"},
		{"ipv6 peer", "[2001:db8::1]:4000", []string{"198.51.100.1"}, "2001:db8::1"},
		{"v4-mapped peer", "[::ffff:10.1.2.3]:4000", []string{"198.51.100.1"}, "198.51.100.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/", nil)
			req.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			require.Equal(t, tt.want, r.Resolve(req))
		})
	}

	none, err := clientip.New(nil)
	require.NoError(t, err)
	req := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/", nil)
	req.RemoteAddr = "10.1.2.3:1"
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	require.Equal(t, "10.1.2.3", none.Resolve(req), "no trusted proxies: the header is never believed")

	_, err = clientip.New([]string{"not-a-cidr"})
	require.Error(t, err)
}
