package ingestbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/process/processtest"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
)

// Shape of the campaign of BenchmarkCampaignStats: statsRecipients recipients, each sent one
// email; 3% of them bounce, the rest are delivered; statsOpeners of them open (every one at
// least once, some many times), a quarter of the openers only through a mail-privacy proxy
// (every open of theirs machine traffic); statsClickers of the human openers click, a tenth of
// them only through a link scanner; a few complain or unsubscribe. 10 million events in all.
const (
	statsRecipients   = 1_000_000
	statsOpeners      = 400_000 // 40% of the recipients
	statsOpens        = 6_495_000
	statsClickers     = 100_000 // 10% of the recipients
	statsClicks       = 1_500_000
	statsComplaints   = 1_000
	statsUnsubscribes = 4_000
	// statsCampaignEvents is the campaign's number of events: sent, delivered or bounced, and
	// the engagement.
	statsCampaignEvents = 2*statsRecipients + statsOpens + statsClicks + statsComplaints + statsUnsubscribes
	// statsOtherEvents are the events of other campaigns: a quarter in the same domain, the
	// rest in statsOtherTenants other tenants.
	statsOtherEvents  = 1_000_000
	statsOtherTenants = 40
	// statsLoadBatch is the most rows one INSERT ... SELECT writes.
	statsLoadBatch = 1_000_000
	// statsMinRequests is the least number of requests the latencies are computed from, the
	// loop's own topped up after it when it ran fewer.
	statsMinRequests = 300
	// statsRawRuns is the number of runs of the naive query: it reads every event of the
	// campaign, and its time hardly varies.
	statsRawRuns = 3
	// statsRollupWait bounds the wait for the worker's rollup, its retries included.
	statsRollupWait = 15 * time.Minute
	// statsRedisDB is the Redis database of the processes: the flag events_partitioned_storage
	// is global, and the processes of the tests (database 0) must not see it.
	statsRedisDB = 7
)

// statsBench is the system under BenchmarkCampaignStats: the gateway, the campaign service,
// events-ingest and the worker on a database of their own, with a real tenant and campaign.
type statsBench struct {
	*bench
	campaign  uuid.UUID
	dbURL     string
	processes func(adminPort int) map[string]string
	// rawPool is events-ingest's role, for the naive query.
	rawPool *pgxpool.Pool
}

// campaignCounts are the counts GetCampaignStats answers, as the naive query computes them.
type campaignCounts struct {
	Sent, Delivered, Bounces, Complaints, Unsubscribes   int64
	Opens, HumanOpens, UniqueOpens, UniqueHumanOpens     int64
	Clicks, HumanClicks, UniqueClicks, UniqueHumanClicks int64
}

func countsOf(s *eventsv1.CampaignStats) campaignCounts {
	return campaignCounts{
		Sent: s.GetSent(), Delivered: s.GetDelivered(), Bounces: s.GetBounces(), Complaints: s.GetComplaints(),
		Unsubscribes: s.GetUnsubscribes(),
		Opens:        s.GetOpens().GetTotal(), HumanOpens: s.GetOpens().GetHuman(),
		UniqueOpens: s.GetOpens().GetUnique(), UniqueHumanOpens: s.GetOpens().GetUniqueHuman(),
		Clicks: s.GetClicks().GetTotal(), HumanClicks: s.GetClicks().GetHuman(),
		UniqueClicks: s.GetClicks().GetUnique(), UniqueHumanClicks: s.GetClicks().GetUniqueHuman(),
	}
}

// BenchmarkCampaignStats reads the statistics of a campaign of 10 million events
// (GetCampaignStats) through the gateway (REST, one keep-alive connection, one request after
// the other: one b.N iteration per request) and straight from events-ingest over gRPC, and
// compares them with the naive design: one query counting the campaign's events by type
// (count(DISTINCT recipient_id) for the unique opens and clicks), run statsRawRuns times in the
// same run. The events are loaded with INSERT ... SELECT into events.engagement_events (flag
// events_partitioned_storage on), beside 1 million events of other campaigns and tenants, and
// the worker's rollup counts them when it starts; the benchmark checks once that the API
// answers the naive query's counts. It reports p50-ms, p99-ms and requests/s (REST),
// grpc-p99-ms, raw-ms (the naive query's fastest run) and ratio-vs-raw (raw-ms / p99-ms).
func BenchmarkCampaignStats(b *testing.B) {
	setupStart := time.Now()
	sb := setupStats(b)
	ctx := context.Background()

	loadStart := time.Now()
	sb.load(b)
	b.Logf("loaded %d events of the campaign and %d of others in %s; %s", statsCampaignEvents, statsOtherEvents,
		time.Since(loadStart).Round(time.Second), sb.sizes(b))

	sb.startWorker(b)
	sb.waitRollup(b)
	b.Logf("setup (processes, sign-up, load, rollup) took %s; %s", time.Since(setupStart).Round(time.Second), sb.durability)

	// The naive design, then the check that the API answers the same counts.
	raw := make([]time.Duration, 0, statsRawRuns)
	var want campaignCounts
	for range statsRawRuns {
		startAt := time.Now()
		got := sb.rawCounts(b)
		raw = append(raw, time.Since(startAt))
		want = got
	}
	b.Logf("naive query: %s (runs)", raw)

	rest := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer rest.CloseIdleConnections()
	url := sb.gatewayURL + "/v1/workspaces/" + sb.tenant.WorkspaceID.String() + "/domains/" + sb.tenant.DomainID.String() +
		"/campaigns/" + sb.campaign.String() + "/stats"
	var fromREST eventsv1.GetCampaignStatsResponse
	require.NoError(b, protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(get(b, rest, url, sb.token), &fromREST))
	require.Equal(b, want, countsOf(fromREST.GetStats()), "REST answers the counts of the events")

	cc, err := rpc.Dial(sb.ingestAddr)
	require.NoError(b, err)
	defer func() { _ = cc.Close() }()
	grpcClient := eventsv1.NewEventStatsServiceClient(cc)
	grpcCtx := tenancy.WithToken(ctx, sb.token)
	req := &eventsv1.GetCampaignStatsRequest{
		WorkspaceId: sb.tenant.WorkspaceID.String(), DomainId: sb.tenant.DomainID.String(), CampaignId: sb.campaign.String(),
	}
	fromGRPC, err := grpcClient.GetCampaignStats(grpcCtx, req)
	require.NoError(b, err)
	require.Equal(b, want, countsOf(fromGRPC.GetStats()), "gRPC answers the counts of the events")
	b.Logf("counts: %+v", want)

	var lat []time.Duration
	for b.Loop() {
		startAt := time.Now()
		get(b, rest, url, sb.token)
		lat = append(lat, time.Since(startAt))
	}
	for len(lat) < statsMinRequests {
		startAt := time.Now()
		get(b, rest, url, sb.token)
		lat = append(lat, time.Since(startAt))
	}
	grpcLat := make([]time.Duration, 0, len(lat))
	for range len(lat) {
		startAt := time.Now()
		_, err := grpcClient.GetCampaignStats(grpcCtx, req)
		grpcLat = append(grpcLat, time.Since(startAt))
		require.NoError(b, err)
	}

	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	slices.Sort(lat)
	slices.Sort(grpcLat)
	slices.Sort(raw)
	p50, p99, gp50, gp99 := percentile(lat, 50), percentile(lat, 99), percentile(grpcLat, 50), percentile(grpcLat, 99)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(float64(len(lat))/sum.Seconds(), "requests/s")
	b.ReportMetric(ms(gp99), "grpc-p99-ms")
	b.ReportMetric(ms(raw[0]), "raw-ms")
	b.ReportMetric(raw[0].Seconds()/p99.Seconds(), "ratio-vs-raw")
	b.Logf("%d requests: REST p50 %s p99 %s max %s; gRPC p50 %s p99 %s; naive query %s (fastest of %d)",
		len(lat), p50, p99, lat[len(lat)-1], gp50, gp99, raw[0], len(raw))
}

// percentile returns the p-th percentile of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// get sends an authenticated GET to url and returns the body of its 200 answer.
func get(b *testing.B, client *http.Client, url, token string) []byte {
	b.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	require.NoError(b, err)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	require.NoError(b, err)
	defer func() { _ = res.Body.Close() }()
	body, err := io.ReadAll(res.Body)
	require.NoError(b, err)
	if res.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %s", url, res.StatusCode, body)
	}
	return body
}

// setupStats starts the campaign service, events-ingest and the gateway with the flag
// events_partitioned_storage on, signs a company up through the gateway and creates a
// campaign through the REST API. The worker starts once the events are loaded.
func setupStats(b *testing.B) *statsBench {
	b.Helper()
	binaries(b)
	dbURL := pgtest.URL(b)
	redisAddr := pgtest.RedisAddr(b)
	redisHost, redisPort, err := net.SplitHostPort(redisAddr)
	require.NoError(b, err)
	partitionedStorageOn(b, redisAddr)
	secret := randomSecret()
	sb := &statsBench{bench: &bench{admin: pgtest.Open(b, dbURL)}, dbURL: dbURL}
	sb.durability = durability(b, sb.admin)

	campaignPort, ingestPort, httpPort := processtest.FreePort(b), processtest.FreePort(b), processtest.FreePort(b)
	// Nothing the benchmark asks needs the recipient service: its address is a closed port.
	recipientAddr := "127.0.0.1:" + strconv.Itoa(processtest.FreePort(b))
	campaignAddr := "127.0.0.1:" + strconv.Itoa(campaignPort)
	sb.ingestAddr = "127.0.0.1:" + strconv.Itoa(ingestPort)
	sb.processes = func(admin int) map[string]string {
		env := processEnv(redisHost, redisPort, secret, admin)
		maps.Copy(env, map[string]string{
			"REDIS_DB": strconv.Itoa(statsRedisDB), "CAMPAIGN_GRPC_ADDR": campaignAddr, "RECIPIENT_GRPC_ADDR": recipientAddr,
		})
		return env
	}
	serve := func(name string, env map[string]string) {
		admin := processtest.FreePort(b)
		all := sb.processes(admin)
		// Each service as its own role, as in production: row-level security applies.
		all["DATABASE_URL"] = pgtest.URLAs(b, dbURL, migrations.ServiceRoles()[name])
		maps.Copy(all, env)
		start(b, name, admin, all)
	}
	serve("campaign", map[string]string{"GRPC_PORT": strconv.Itoa(campaignPort)})
	serve("events-ingest", map[string]string{"GRPC_PORT": strconv.Itoa(ingestPort)})
	serve("gateway", map[string]string{
		"PORT": strconv.Itoa(httpPort), "EVENTS_GRPC_ADDR": sb.ingestAddr,
		"RATE_LIMIT_PER_SECOND": "1000000", "RATE_LIMIT_BURST": "1000000",
		// The access token of the sign-up serves the whole run, the load included.
		"JWT_EXPIRY": "2h",
	})
	sb.gatewayURL = "http://127.0.0.1:" + strconv.Itoa(httpPort)
	sb.signUp(b)
	sb.requireFlagOn(b)

	var created struct {
		Campaign struct{ ID string } `json:"campaign"`
	}
	sb.postJSON(b, "/v1/workspaces/"+sb.tenant.WorkspaceID.String()+"/domains/"+sb.tenant.DomainID.String()+"/campaigns", map[string]any{
		"name": "Spring sale", "subject": "Spring sale: 20% off", "from_email": "news@example.com",
		"html_body": "<p>Hello</p>", "text_body": "Hello",
	}, &created)
	sb.campaign = uuid.MustParse(created.Campaign.ID)
	return sb
}

// partitionedStorageOn turns the flag events_partitioned_storage on globally in the processes'
// Redis database (statsRedisDB) for the benchmark. The key is written as the flags provider
// lays it out (libs/flags/redis.go) but without the change message of flags.Redis.Set: the
// message channel is shared by every Redis database, and the test processes on database 0
// would take the change as theirs. The processes start after it and read it then. A value
// already there (another run of this benchmark) is left as it is, and must be on.
func partitionedStorageOn(b *testing.B, addr string) {
	b.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: statsRedisDB})
	b.Cleanup(func() { _ = rdb.Close() })
	const index = "ff:_index"
	key := "ff:" + flags.EventsPartitionedStorage.Name()
	created, err := rdb.SetNX(ctx, key, "true", 0).Result()
	require.NoError(b, err)
	if !created {
		v, err := rdb.Get(ctx, key).Result()
		require.NoError(b, err)
		require.Equal(b, "true", v, "%s is set in Redis database %d: another run uses it", key, statsRedisDB)
	}
	require.NoError(b, rdb.SAdd(ctx, index, key).Err())
	if created {
		b.Cleanup(func() {
			_, err := rdb.TxPipelined(context.Background(), func(p redis.Pipeliner) error {
				p.Del(context.Background(), key)
				p.SRem(context.Background(), index, key)
				return nil
			})
			if err != nil {
				b.Errorf("clear %s: %v", key, err)
			}
		})
	}
}

// requireFlagOn checks, through the gateway's flag listing, that the processes read the flag
// as on.
func (sb *statsBench) requireFlagOn(b *testing.B) {
	b.Helper()
	body := get(b, http.DefaultClient, sb.gatewayURL+"/v1/flags", sb.token)
	var list struct {
		Flags []struct {
			Name    string `json:"name"`
			Enabled bool   `json:"enabled"`
		} `json:"flags"`
	}
	require.NoError(b, json.Unmarshal(body, &list))
	for _, f := range list.Flags {
		if f.Name == flags.EventsPartitionedStorage.Name() {
			require.True(b, f.Enabled, "the gateway reads %s as off: %s", f.Name, body)
			return
		}
	}
	b.Fatalf("GET /v1/flags does not list %s: %s", flags.EventsPartitionedStorage.Name(), body)
}

// startWorker starts the worker, whose rollup runs as it starts.
func (sb *statsBench) startWorker(b *testing.B) {
	b.Helper()
	admin := processtest.FreePort(b)
	env := sb.processes(admin)
	env["DATABASE_URL"] = pgtest.URLAs(b, sb.dbURL, migrations.RoleWorker)
	// The rollup at start is the one measured; none runs during the measurement.
	env["EVENT_ROLLUP_INTERVAL"] = "24h"
	start(b, "worker", admin, env)
}

// waitRollup waits until the rollup has counted the campaign's unique opens, and logs how long
// its transaction took (from its start, the row's refreshed_at, to its commit, seen by a poll
// every 100ms). A failed run is logged with River's record of the error and waited out: River
// runs the job again after a backoff. The benchmark fails when River gives up on the job or
// after statsRollupWait.
func (sb *statsBench) waitRollup(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	startAt := time.Now()
	deadline := startAt.Add(statsRollupWait)
	logged := 0
	for {
		var refreshed, seen time.Time
		err := sb.admin.QueryRow(ctx, `SELECT refreshed_at, clock_timestamp() FROM events.campaign_engagement_uniques
			WHERE domain_id = $1 AND campaign_id = $2`, sb.tenant.DomainID, sb.campaign).Scan(&refreshed, &seen)
		if err == nil {
			var days, recipients int64
			require.NoError(b, sb.admin.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM events.email_events_daily),
				(SELECT count(*) FROM events.campaign_recipient_engagement)`).Scan(&days, &recipients))
			b.Logf("rollup: %s (transaction start to commit; %d failed runs before, %s from the worker's start), %d rows of events.email_events_daily, %d of events.campaign_recipient_engagement",
				seen.Sub(refreshed).Round(10*time.Millisecond), logged, time.Since(startAt).Round(time.Second), days, recipients)
			return
		}
		require.ErrorIs(b, err, pgx.ErrNoRows)
		var (
			state    string
			failures []string
		)
		err = sb.admin.QueryRow(ctx, `SELECT j.state::text, coalesce((SELECT array_agg(e->>'error' ORDER BY (e->>'attempt')::int)
			FROM jsonb_array_elements(to_jsonb(j.errors)) AS e), '{}')
			FROM river.river_job AS j WHERE j.kind = 'event_rollup' ORDER BY j.id LIMIT 1`).Scan(&state, &failures)
		if !errors.Is(err, pgx.ErrNoRows) {
			require.NoError(b, err)
		}
		for ; logged < len(failures); logged++ {
			b.Logf("rollup: run %d failed after %s from the worker's start (River runs it again): %s",
				logged+1, time.Since(startAt).Round(time.Second), failures[logged])
		}
		if state == "discarded" || state == "cancelled" {
			b.Fatalf("the worker's rollup is %s after %d failed runs", state, len(failures))
		}
		if time.Now().After(deadline) {
			b.Fatalf("the worker's rollup did not count the campaign within %s", statsRollupWait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statsInsert writes the rows of the query events, whose columns are those of the table but
// the id, in this order, with random ids (as the ids of tracked events look).
func statsInsert(events string) string {
	return `INSERT INTO events.engagement_events
	(id, company_id, workspace_id, domain_id, type, campaign_id, recipient_id, created_at, is_machine, user_agent, ip, url, bounce_class)
SELECT gen_random_uuid(), e.* FROM (` + events + `) AS e`
}

// statsFrom names the parameters of every load statement as p.company_id, p.workspace_id,
// p.domain_id, p.campaign_id (the campaign's tenant and id), p.send_start (when the sending
// started) and p.latest (the latest event time), and numbers its rows with the range [$7, $8).
const statsFrom = `FROM (SELECT $1::uuid AS company_id, $2::uuid AS workspace_id, $3::uuid AS domain_id, $4::uuid AS campaign_id,
	$5::timestamptz AS send_start, $6::timestamptz AS latest) AS p,
	generate_series($7::bigint, $8::bigint - 1) AS `

// A recipient is numbered 0 to statsRecipients-1 and its id derived from the campaign's and
// its number. Opens and clicks happen at random times from an hour after the sending started
// (when every email is sent) to p.latest.
const (
	statsTenant    = `p.company_id, p.workspace_id, p.domain_id`
	statsRecipient = `md5(p.campaign_id::text || ':' || (%s))::uuid`
	statsLater     = `p.send_start + interval '1 hour' + random() * (p.latest - p.send_start - interval '1 hour') AS created_at`
)

// statsLoadSQL are the statements of the load, each run over ranges of at most statsLoadBatch
// of its rows: the sent emails (one every 3.6ms for an hour), their delivery or bounce two
// seconds later, the opens and clicks (the first statsOpeners opens, and statsClickers clicks,
// one for each opener or clicker, the rest drawn with a bias to the first ones, so that a few
// open or click many times), the complaints and unsubscribes, and the events of other
// campaigns and tenants.
var statsLoadSQL = []struct {
	what string
	rows int
	sql  string
}{
	{"sent", statsRecipients, statsInsert(`
SELECT ` + statsTenant + `, 'sent', p.campaign_id, ` + fmt.Sprintf(statsRecipient, "r") + `,
	p.send_start + r * interval '3.6 ms' AS created_at, false, '', '', '', ''
` + statsFrom + `r`)},
	{"delivered or bounced", statsRecipients, statsInsert(`
SELECT ` + statsTenant + `, CASE WHEN r % 100 < 3 THEN 'bounce' ELSE 'delivered' END, p.campaign_id,
	` + fmt.Sprintf(statsRecipient, "r") + `, p.send_start + r * interval '3.6 ms' + interval '2 seconds' AS created_at,
	false, '', '', '', CASE WHEN r % 100 < 3 THEN 'hard' ELSE '' END
` + statsFrom + `r`)},
	// Opener k is recipient k/2*5 + 3 + k%2: the recipients r with r % 5 in (3, 4), all
	// delivered. Openers with k % 4 = 0 read their mail through a privacy proxy.
	{"open", statsOpens, statsInsert(`
SELECT ` + statsTenant + `, 'open', p.campaign_id, ` + fmt.Sprintf(statsRecipient, "k / 2 * 5 + 3 + k % 2") + `,
	` + statsLater + `, k % 4 = 0, CASE WHEN k % 4 = 0 THEN 'Mozilla/5.0' ELSE '` + userAgent + `' END, '198.51.100.7', '', ''
FROM (SELECT p.*, CASE WHEN j < ` + strconv.Itoa(statsOpeners) + ` THEN j
	ELSE floor(` + strconv.Itoa(statsOpeners) + ` * random() ^ 2)::bigint END AS k
	` + statsFrom + `j) AS p`)},
	// Clicker c is opener 4c + 1, recipient 10c + 4; clickers with c % 10 = 0 have their links
	// followed by a scanner.
	{"click", statsClicks, statsInsert(`
SELECT ` + statsTenant + `, 'click', p.campaign_id, ` + fmt.Sprintf(statsRecipient, "10 * c + 4") + `,
	` + statsLater + `, c % 10 = 0, '` + userAgent + `', '198.51.100.7', 'https://example.com/spring-sale?utm_source=herald', ''
FROM (SELECT p.*, CASE WHEN j < ` + strconv.Itoa(statsClickers) + ` THEN j
	ELSE floor(` + strconv.Itoa(statsClickers) + ` * random() ^ 2)::bigint END AS c
	` + statsFrom + `j) AS p`)},
	// Recipients 1000n + 517 complain and 250n + 123 unsubscribe: delivered ones.
	{"complaint or unsubscribe", statsComplaints + statsUnsubscribes, statsInsert(`
SELECT ` + statsTenant + `, CASE WHEN n < ` + strconv.Itoa(statsComplaints) + ` THEN 'complaint' ELSE 'unsubscribe' END,
	p.campaign_id, ` + fmt.Sprintf(statsRecipient, "CASE WHEN n < "+strconv.Itoa(statsComplaints)+" THEN 1000 * n + 517 ELSE 250 * (n - "+strconv.Itoa(statsComplaints)+") + 123 END") + `,
	` + statsLater + `, false, '', '', '', ''
` + statsFrom + `n`)},
	// A quarter in another campaign of the same domain, the rest in three campaigns of each of
	// the other tenants, of every type.
	{"other campaigns", statsOtherEvents, statsInsert(`
SELECT
	CASE WHEN g < ` + strconv.Itoa(statsOtherEvents/4) + ` THEN p.company_id ELSE md5(p.campaign_id::text || ':company:' || t)::uuid END,
	CASE WHEN g < ` + strconv.Itoa(statsOtherEvents/4) + ` THEN p.workspace_id ELSE md5(p.campaign_id::text || ':workspace:' || t)::uuid END,
	CASE WHEN g < ` + strconv.Itoa(statsOtherEvents/4) + ` THEN p.domain_id ELSE md5(p.campaign_id::text || ':domain:' || t)::uuid END,
	typ,
	CASE WHEN g < ` + strconv.Itoa(statsOtherEvents/4) + ` THEN md5(p.campaign_id::text || ':other')::uuid
		ELSE md5(p.campaign_id::text || ':campaign:' || g % ` + strconv.Itoa(3*statsOtherTenants) + `)::uuid END,
	md5(p.campaign_id::text || ':recipient:' || t || ':' || (g / ` + strconv.Itoa(statsOtherTenants) + `) % 5000)::uuid,
	` + statsLater + `, typ IN ('open', 'click') AND random() < 0.1, '` + userAgent + `', '198.51.100.7', '', ''
FROM (SELECT p.*, g, g % ` + strconv.Itoa(statsOtherTenants) + ` AS t,
	(ARRAY['sent', 'sent', 'delivered', 'delivered', 'open', 'open', 'open', 'open', 'open', 'open', 'open', 'open',
		'click', 'click', 'click', 'click', 'bounce', 'complaint', 'unsubscribe', 'open'])[g % 20 + 1] AS typ
	` + statsFrom + `g) AS p`)},
}

// load writes the events, after creating the partitions of their weeks, in two lanes of
// statements run at once (this machine's cores): the campaign's opens in one, the rest in
// the other. Two statements writing events of the same campaign and type would insert at the
// same end of the index on (domain_id, campaign_id, type) and wait on each other. The table is
// analyzed afterwards, as autovacuum would have done by the time the events are days old.
func (sb *statsBench) load(b *testing.B) {
	b.Helper()
	ctx := context.Background()
	// The rollup counts from three days before today (UTC): the events stay within it even
	// should the day change before it runs.
	latest := time.Now().Add(-time.Minute).UTC()
	sendStart := latest.Add(-70 * time.Hour)
	_, err := sb.admin.Exec(ctx, `SELECT events.create_engagement_partitions($1, $2)`, sendStart.Add(-24*time.Hour), latest.Add(24*time.Hour))
	require.NoError(b, err)

	type batch struct {
		what   string
		sql    string
		lo, hi int
	}
	lanes := make([][]batch, 2)
	for _, s := range statsLoadSQL {
		lane := 1
		if s.what == "open" {
			lane = 0
		}
		parts := (s.rows + statsLoadBatch - 1) / statsLoadBatch
		for i := range parts {
			lanes[lane] = append(lanes[lane], batch{what: s.what, sql: s.sql, lo: s.rows * i / parts, hi: s.rows * (i + 1) / parts})
		}
	}
	errs := make([]error, len(lanes))
	times := make([][]string, len(lanes))
	var wg sync.WaitGroup
	for i, lane := range lanes {
		wg.Go(func() {
			for _, bt := range lane {
				startAt := time.Now()
				tag, err := sb.admin.Exec(ctx, bt.sql, sb.tenant.CompanyID, sb.tenant.WorkspaceID, sb.tenant.DomainID, sb.campaign,
					sendStart, latest, bt.lo, bt.hi)
				if err == nil && tag.RowsAffected() != int64(bt.hi-bt.lo) {
					err = fmt.Errorf("%d rows written, %d expected", tag.RowsAffected(), bt.hi-bt.lo)
				}
				if err != nil {
					errs[i] = fmt.Errorf("load %s [%d, %d): %w", bt.what, bt.lo, bt.hi, err)
					return
				}
				times[i] = append(times[i], fmt.Sprintf("%d %s %s", bt.hi-bt.lo, bt.what, time.Since(startAt).Round(time.Second)))
			}
		})
	}
	wg.Wait()
	require.NoError(b, errors.Join(errs...))
	startAt := time.Now()
	_, err = sb.admin.Exec(ctx, `ANALYZE events.engagement_events`)
	require.NoError(b, err)
	b.Logf("load: %s; then %s; ANALYZE %s", strings.Join(times[0], ", "), strings.Join(times[1], ", "),
		time.Since(startAt).Round(time.Millisecond))
}

// sizes says the number of events and the size of the table and its indexes.
func (sb *statsBench) sizes(b *testing.B) string {
	b.Helper()
	var rows, table, indexes int64
	require.NoError(b, sb.admin.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM events.engagement_events),
		sum(pg_table_size(relid)), sum(pg_indexes_size(relid))
		FROM pg_partition_tree('events.engagement_events') WHERE isleaf`).Scan(&rows, &table, &indexes))
	return fmt.Sprintf("events.engagement_events: %d rows, table %d MiB, indexes %d MiB", rows, table>>20, indexes>>20)
}

// statsRawSQL is the naive design: the campaign's counts from its events, as its service's
// role in the tenant's transaction, as GetCampaignStats reads the rollup.
const statsRawSQL = `SELECT count(*),
	count(*) FILTER (WHERE type = 'sent'), count(*) FILTER (WHERE type = 'delivered'),
	count(*) FILTER (WHERE type = 'bounce'), count(*) FILTER (WHERE type = 'complaint'),
	count(*) FILTER (WHERE type = 'unsubscribe'),
	count(*) FILTER (WHERE type = 'open'), count(*) FILTER (WHERE type = 'open' AND NOT is_machine),
	count(DISTINCT recipient_id) FILTER (WHERE type = 'open'),
	count(DISTINCT recipient_id) FILTER (WHERE type = 'open' AND NOT is_machine),
	count(*) FILTER (WHERE type = 'click'), count(*) FILTER (WHERE type = 'click' AND NOT is_machine),
	count(DISTINCT recipient_id) FILTER (WHERE type = 'click'),
	count(DISTINCT recipient_id) FILTER (WHERE type = 'click' AND NOT is_machine)
FROM events.engagement_events
WHERE domain_id = $1 AND campaign_id = $2`

// rawCounts runs the naive query once.
func (sb *statsBench) rawCounts(b *testing.B) campaignCounts {
	b.Helper()
	if sb.rawPool == nil {
		sb.rawPool = pgtest.Open(b, pgtest.URLAs(b, sb.dbURL, migrations.RoleEvents))
	}
	var (
		c     campaignCounts
		total int64
	)
	err := tenancy.InTx(context.Background(), sb.rawPool, sb.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), statsRawSQL, sb.tenant.DomainID, sb.campaign).Scan(&total,
			&c.Sent, &c.Delivered, &c.Bounces, &c.Complaints, &c.Unsubscribes,
			&c.Opens, &c.HumanOpens, &c.UniqueOpens, &c.UniqueHumanOpens,
			&c.Clicks, &c.HumanClicks, &c.UniqueClicks, &c.UniqueHumanClicks)
	})
	require.NoError(b, err)
	require.Equal(b, int64(statsCampaignEvents), total, "the campaign's events")
	return c
}
