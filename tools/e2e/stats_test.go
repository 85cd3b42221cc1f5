package e2e

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// engagementCounts, campaignStats, dailyStats and recipientEvent are the JSON of the
// statistics routes; int64 counts travel as strings, zero ones are omitted.
type engagementCounts struct {
	Total       int64 `json:"total,string"`
	Human       int64 `json:"human,string"`
	Unique      int64 `json:"unique,string"`
	UniqueHuman int64 `json:"unique_human,string"`
}

type campaignStats struct {
	CampaignID   string             `json:"campaign_id"`
	Sent         int64              `json:"sent,string"`
	Delivered    int64              `json:"delivered,string"`
	Opens        engagementCounts   `json:"opens"`
	Clicks       engagementCounts   `json:"clicks"`
	Bounces      int64              `json:"bounces,string"`
	Complaints   int64              `json:"complaints,string"`
	Unsubscribes int64              `json:"unsubscribes,string"`
	Rates        map[string]float64 `json:"rates"`
	RefreshTime  string             `json:"refresh_time"`
}

type dailyStats struct {
	Date         string `json:"date"`
	Total        int64  `json:"total,string"`
	Sent         int64  `json:"sent,string"`
	Delivered    int64  `json:"delivered,string"`
	Opens        int64  `json:"opens,string"`
	HumanOpens   int64  `json:"human_opens,string"`
	Clicks       int64  `json:"clicks,string"`
	HumanClicks  int64  `json:"human_clicks,string"`
	Unsubscribes int64  `json:"unsubscribes,string"`
}

type recipientEvent struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	CampaignID string `json:"campaign_id"`
	OccurTime  string `json:"occur_time"`
	URL        string `json:"url"`
}

// TestStatisticsAPI ingests a campaign's events through the API and reads them back: the
// campaign's statistics and the domain's daily series once the worker's rollup counted them
// (every second in these tests), and a recipient's timeline at once, page by page. Ids that
// do not exist in the domain are not found; bad arguments are refused with 400.
func TestStatisticsAPI(t *testing.T) {
	t.Parallel()
	s := shared(t)
	a := newAPI(t, s)
	tn := newTenant(t, s)
	c := createCampaign(t, a, tn)
	r1, r2 := createRecipient(t, a, tn), createRecipient(t, a, tn)

	now := time.Now().UTC().Truncate(time.Second)
	at := func(minutes int) string {
		return now.Add(time.Duration(minutes) * time.Minute).Format(time.RFC3339Nano)
	}
	event := func(typ, recipientID string, minutes int, extra map[string]any) map[string]any {
		e := map[string]any{"id": uuid.NewString(), "type": typ, "campaign_id": c.ID, "recipient_id": recipientID, "occur_time": at(minutes)}
		for k, v := range extra {
			e[k] = v
		}
		return e
	}
	reader := map[string]any{"user_agent": trackingUA, "ip": "192.0.2.7"}
	batch := map[string]any{"events": []map[string]any{
		event("EVENT_TYPE_SENT", r1.ID, -10, nil),
		event("EVENT_TYPE_SENT", r2.ID, -10, nil),
		event("EVENT_TYPE_DELIVERED", r1.ID, -9, nil),
		event("EVENT_TYPE_DELIVERED", r2.ID, -9, nil),
		event("EVENT_TYPE_OPEN", r1.ID, -8, reader),
		event("EVENT_TYPE_OPEN", r1.ID, -5, reader),
		event("EVENT_TYPE_OPEN", r2.ID, -7, reader),
		event("EVENT_TYPE_CLICK", r1.ID, -4, map[string]any{"user_agent": trackingUA, "ip": "192.0.2.7", "url": "https://example.com/spring"}),
		event("EVENT_TYPE_UNSUBSCRIBE", r2.ID, -3, nil),
	}}
	var res ingestResponse
	code, raw := a.do(http.MethodPost, tn.path("/events:batch"), tn.token, batch, &res)
	require.Equal(t, http.StatusOK, code, "ingest: %s", raw)
	require.Equal(t, ingestResponse{Accepted: 9}, res)

	t.Run("campaign", func(t *testing.T) {
		var got struct {
			Stats campaignStats `json:"stats"`
		}
		waitFor(t, 60*time.Second, "the rollup to count the campaign", func() (bool, string) {
			code, raw := a.do(http.MethodGet, tn.path("/campaigns/"+c.ID+"/stats"), tn.token, nil, &got)
			require.Equal(t, http.StatusOK, code, "stats: %s", raw)
			return got.Stats.Unsubscribes == 1 && got.Stats.Opens.Unique == 2, string(raw)
		})
		st := got.Stats
		require.Equal(t, c.ID, st.CampaignID)
		require.Equal(t, [2]int64{2, 2}, [2]int64{st.Sent, st.Delivered})
		// The user agent is a mail client's: every open and click is human.
		require.Equal(t, engagementCounts{Total: 3, Human: 3, Unique: 2, UniqueHuman: 2}, st.Opens)
		require.Equal(t, engagementCounts{Total: 1, Human: 1, Unique: 1, UniqueHuman: 1}, st.Clicks)
		require.Equal(t, [3]int64{0, 0, 1}, [3]int64{st.Bounces, st.Complaints, st.Unsubscribes})
		require.NotEmpty(t, st.RefreshTime)
		require.InDelta(t, 1.0, st.Rates["delivery_rate"], 1e-9)
		require.InDelta(t, 1.0, st.Rates["open_rate"], 1e-9)
		require.InDelta(t, 0.5, st.Rates["click_rate"], 1e-9)
		require.InDelta(t, 0.5, st.Rates["click_to_open_rate"], 1e-9)
		require.InDelta(t, 0.5, st.Rates["unsubscribe_rate"], 1e-9)

		// A campaign of the domain without events: zero counts. Made-up ids: not found.
		empty := createCampaign(t, a, tn)
		got.Stats = campaignStats{}
		code, raw := a.do(http.MethodGet, tn.path("/campaigns/"+empty.ID+"/stats"), tn.token, nil, &got)
		require.Equal(t, http.StatusOK, code, "stats: %s", raw)
		require.Equal(t, campaignStats{CampaignID: empty.ID, Rates: map[string]float64{}}, got.Stats, "every rate zero, so omitted")
		code, raw = a.do(http.MethodGet, tn.path("/campaigns/"+uuid.NewString()+"/stats"), tn.token, nil, nil)
		require.Equal(t, http.StatusNotFound, code, "%s", raw)
		require.Equal(t, "campaign not found", requireError(t, raw, "not_found").Message)
		code, raw = a.do(http.MethodGet, tn.path("/campaigns/not-a-uuid/stats"), tn.token, nil, nil)
		require.Equal(t, http.StatusBadRequest, code, "%s", raw)
		requireError(t, raw, "invalid_argument")
	})

	t.Run("daily", func(t *testing.T) {
		var got struct {
			Days []dailyStats `json:"days"`
		}
		today := now.Format(time.DateOnly)
		yesterday := now.AddDate(0, 0, -1).Format(time.DateOnly)
		q := url.Values{"start_date": {yesterday}, "end_date": {today}}
		waitFor(t, 60*time.Second, "the rollup to count the day", func() (bool, string) {
			code, raw := a.do(http.MethodGet, tn.path("/stats/daily?"+q.Encode()), tn.token, nil, &got)
			require.Equal(t, http.StatusOK, code, "daily: %s", raw)
			require.Len(t, got.Days, 2)
			var total int64
			for _, d := range got.Days {
				total += d.Total
			}
			return total == 9, string(raw)
		})
		var sum dailyStats
		for _, d := range got.Days {
			require.Contains(t, []string{yesterday, today}, d.Date)
			sum.Total += d.Total
			sum.Sent += d.Sent
			sum.Delivered += d.Delivered
			sum.Opens += d.Opens
			sum.HumanOpens += d.HumanOpens
			sum.Clicks += d.Clicks
			sum.HumanClicks += d.HumanClicks
			sum.Unsubscribes += d.Unsubscribes
		}
		require.Equal(t, dailyStats{Total: 9, Sent: 2, Delivered: 2, Opens: 3, HumanOpens: 3, Clicks: 1, HumanClicks: 1, Unsubscribes: 1}, sum)

		// The default range is the last 30 days; a bad date or range is refused.
		code, raw := a.do(http.MethodGet, tn.path("/stats/daily"), tn.token, nil, &got)
		require.Equal(t, http.StatusOK, code, "daily: %s", raw)
		require.Len(t, got.Days, 30)
		require.Equal(t, today, got.Days[29].Date)
		for _, bad := range []url.Values{
			{"start_date": {"yesterday"}},
			{"start_date": {today}, "end_date": {yesterday}},
			{"start_date": {"2020-01-01"}, "end_date": {today}},
		} {
			code, raw := a.do(http.MethodGet, tn.path("/stats/daily?"+bad.Encode()), tn.token, nil, nil)
			require.Equal(t, http.StatusBadRequest, code, "%v: %s", bad, raw)
			requireError(t, raw, "invalid_argument")
		}
	})

	t.Run("timeline", func(t *testing.T) {
		type page struct {
			Events        []recipientEvent `json:"events"`
			NextPageToken string           `json:"next_page_token"`
		}
		var all []recipientEvent
		token := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 5)
			q := url.Values{"page_size": {"2"}}
			if token != "" {
				q.Set("page_token", token)
			}
			var p page
			code, raw := a.do(http.MethodGet, tn.path("/recipients/"+r1.ID+"/events?"+q.Encode()), tn.token, nil, &p)
			require.Equal(t, http.StatusOK, code, "timeline: %s", raw)
			all = append(all, p.Events...)
			if p.NextPageToken == "" {
				break
			}
			token = p.NextPageToken
		}
		var types []string
		for _, e := range all {
			types = append(types, e.Type)
			require.Equal(t, c.ID, e.CampaignID)
		}
		require.Equal(t, []string{"EVENT_TYPE_CLICK", "EVENT_TYPE_OPEN", "EVENT_TYPE_OPEN", "EVENT_TYPE_DELIVERED", "EVENT_TYPE_SENT"}, types, "newest first")
		require.Equal(t, "https://example.com/spring", all[0].URL)
		require.Equal(t, at(-4), all[0].OccurTime)

		code, raw := a.do(http.MethodGet, tn.path("/recipients/"+uuid.NewString()+"/events"), tn.token, nil, nil)
		require.Equal(t, http.StatusNotFound, code, "%s", raw)
		requireError(t, raw, "not_found")
		for _, q := range []string{"page_size=501", "page_size=-1", "page_token=not-a-token"} {
			code, raw := a.do(http.MethodGet, tn.path("/recipients/"+r1.ID+"/events?"+q), tn.token, nil, nil)
			require.Equal(t, http.StatusBadRequest, code, "%s: %s", q, raw)
			requireError(t, raw, "invalid_argument")
		}
	})
}
