package machine_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/libs/machine"
)

func TestClassifyUserAgent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ua     string
		reason machine.Reason
	}{
		{"", machine.ReasonNoUserAgent},
		{"   ", machine.ReasonNoUserAgent},
		{"Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", machine.ReasonPrivacyProxy},
		{"YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", machine.ReasonPrivacyProxy},
		{"Mozilla/5.0", machine.ReasonPrivacyProxy},
		{" mozilla/5.0 ", machine.ReasonPrivacyProxy},
		{"Mozilla/5.0 (compatible; Microsoft-SafeLinks)", machine.ReasonLinkScanner},
		{"Microsoft Office Existence Discovery", machine.ReasonLinkScanner},
		{"Mozilla/4.0 (compatible; ms-office; MSOffice 16)", machine.ReasonLinkScanner},
		{"Mozilla/5.0 (compatible; Proofpoint URL Defense)", machine.ReasonLinkScanner},
		{"Mimecast-LinkScan/1.0", machine.ReasonLinkScanner},
		{"Barracuda Sentinel (EE)", machine.ReasonLinkScanner},
		{"Symantec Email Security.cloud", machine.ReasonLinkScanner},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36", machine.ReasonLinkScanner},
		{"python-requests/2.31.0", machine.ReasonLinkScanner},
		{"curl/8.5.0", machine.ReasonLinkScanner},
		{"Go-http-client/1.1", machine.ReasonLinkScanner},
		// People.
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148", machine.ReasonNone},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0", machine.ReasonNone},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko)", machine.ReasonNone},
		{"Microsoft Outlook 16.0.17029; Pro", machine.ReasonNone},
		{"Thunderbird/115.5", machine.ReasonNone},
	} {
		v := machine.ClassifyUserAgent(tc.ua)
		require.Equal(t, tc.reason, v.Reason, "%q", tc.ua)
		require.Equal(t, tc.reason != machine.ReasonNone, v.Machine, "%q", tc.ua)
		if v.Machine {
			require.NotEmpty(t, v.Detail, "%q", tc.ua)
		}
	}
}

func TestClassifyTiming(t *testing.T) {
	t.Parallel()
	const person = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
	delivered := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	rules := machine.DefaultRules()
	click := func(url string, after time.Duration) machine.Click {
		return machine.Click{URL: url, At: delivered.Add(after)}
	}
	for _, tc := range []struct {
		name   string
		event  machine.Event
		ctx    machine.Context
		reason machine.Reason
	}{
		{
			name:   "open a second after delivery",
			event:  machine.Event{Type: machine.TypeOpen, UserAgent: person, At: delivered.Add(time.Second)},
			ctx:    machine.Context{DeliveredAt: delivered},
			reason: machine.ReasonTooSoon,
		},
		{
			name:  "open a minute after delivery",
			event: machine.Event{Type: machine.TypeOpen, UserAgent: person, At: delivered.Add(time.Minute)},
			ctx:   machine.Context{DeliveredAt: delivered},
		},
		{
			name:  "open with no delivery time known",
			event: machine.Event{Type: machine.TypeOpen, UserAgent: person, At: delivered},
		},
		{
			name:  "open at exactly the minimum delay",
			event: machine.Event{Type: machine.TypeOpen, UserAgent: person, At: delivered.Add(rules.MinDelay)},
			ctx:   machine.Context{DeliveredAt: delivered},
		},
		{
			name:   "click before delivery was recorded (clock skew)",
			event:  machine.Event{Type: machine.TypeClick, UserAgent: person, URL: "https://a", At: delivered.Add(-time.Second)},
			ctx:    machine.Context{DeliveredAt: delivered},
			reason: machine.ReasonTooSoon,
		},
		{
			name:  "one link clicked again",
			event: machine.Event{Type: machine.TypeClick, UserAgent: person, URL: "https://a", At: delivered.Add(time.Hour)},
			ctx: machine.Context{DeliveredAt: delivered, RecentClicks: []machine.Click{
				click("https://a", time.Hour-time.Second), click("https://a", time.Hour-2*time.Second),
			}},
		},
		{
			name:  "three links within the window",
			event: machine.Event{Type: machine.TypeClick, UserAgent: person, URL: "https://c", At: delivered.Add(time.Hour)},
			ctx: machine.Context{DeliveredAt: delivered, RecentClicks: []machine.Click{
				click("https://a", time.Hour-time.Second), click("https://b", time.Hour-2*time.Second),
			}},
			reason: machine.ReasonLinkBurst,
		},
		{
			name:  "three links spread over minutes",
			event: machine.Event{Type: machine.TypeClick, UserAgent: person, URL: "https://c", At: delivered.Add(time.Hour)},
			ctx: machine.Context{DeliveredAt: delivered, RecentClicks: []machine.Click{
				click("https://a", time.Hour-time.Minute), click("https://b", time.Hour-2*time.Minute),
			}},
		},
		{
			name:  "the burst rule is for clicks only",
			event: machine.Event{Type: machine.TypeOpen, UserAgent: person, At: delivered.Add(time.Hour)},
			ctx: machine.Context{DeliveredAt: delivered, RecentClicks: []machine.Click{
				click("https://a", time.Hour-time.Second), click("https://b", time.Hour-2*time.Second),
			}},
		},
		{
			name:   "the user agent wins over timing",
			event:  machine.Event{Type: machine.TypeOpen, UserAgent: "GoogleImageProxy", At: delivered.Add(time.Hour)},
			ctx:    machine.Context{DeliveredAt: delivered},
			reason: machine.ReasonPrivacyProxy,
		},
	} {
		v := rules.Classify(tc.event, tc.ctx)
		require.Equal(t, tc.reason, v.Reason, tc.name)
		require.Equal(t, tc.reason != machine.ReasonNone, v.Machine, tc.name)
	}

	// The timing rules alone ignore the user agent; Classify is the user agent rules, then
	// them.
	agents := []string{person, "", "GoogleImageProxy", "Mozilla/5.0"}
	for _, tc := range []struct {
		event machine.Event
		ctx   machine.Context
	}{
		{machine.Event{Type: machine.TypeOpen, At: delivered.Add(time.Second)}, machine.Context{DeliveredAt: delivered}},
		{machine.Event{Type: machine.TypeOpen, At: delivered.Add(time.Hour)}, machine.Context{DeliveredAt: delivered}},
		{machine.Event{Type: machine.TypeClick, URL: "https://c", At: delivered.Add(time.Hour)}, machine.Context{RecentClicks: []machine.Click{
			click("https://a", time.Hour-time.Second), click("https://b", time.Hour-2*time.Second),
		}}},
	} {
		tc.event.UserAgent = person
		timing := rules.ClassifyTiming(tc.event, tc.ctx)
		for _, ua := range agents {
			tc.event.UserAgent = ua
			require.Equal(t, timing, rules.ClassifyTiming(tc.event, tc.ctx), "%q", ua)
			want := machine.ClassifyUserAgent(ua)
			if !want.Machine {
				want = timing
			}
			require.Equal(t, want, rules.Classify(tc.event, tc.ctx), "%q", ua)
		}
	}
	// Without a user agent, the timing rules still judge by timing only.
	soon := rules.ClassifyTiming(machine.Event{Type: machine.TypeOpen, At: delivered.Add(time.Second)}, machine.Context{DeliveredAt: delivered})
	require.Equal(t, machine.Verdict{Machine: true, Reason: machine.ReasonTooSoon, Detail: "after 1s"}, soon)

	// Rules that are off classify nothing by timing.
	off := machine.Rules{}
	v := off.Classify(machine.Event{Type: machine.TypeClick, UserAgent: person, URL: "https://c", At: delivered},
		machine.Context{DeliveredAt: delivered, RecentClicks: []machine.Click{click("https://a", 0), click("https://b", 0)}})
	require.False(t, v.Machine)
}
