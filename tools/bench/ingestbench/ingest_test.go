package ingestbench

import (
	"bytes"
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
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/heraldmail/herald/libs/process/processtest"
	"github.com/heraldmail/herald/libs/rpc"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	eventsv1 "github.com/heraldmail/herald/proto/gen/go/herald/events/v1"
)

// eventsTable is the table events-ingest's store writes to; the baselines write there too.
const eventsTable = "events.email_events"

// Shape of the workload.
const (
	// perRound is the number of events ingested by one round of a benchmark.
	perRound = 100_000
	// rounds is the number of rounds of an iteration: baselines before the ingestion in the
	// first, after it in the second (see run).
	rounds = 2
	// chunkSize is the number of events per stream chunk or REST request (the per-message
	// maximum of the API).
	chunkSize = 1000
	// streams is the number of concurrent streams of BenchmarkIngestStream.
	streams = 4
	// window is the number of unacknowledged chunks a stream's client keeps in flight, as a
	// client that holds every chunk until its acknowledgement would.
	window = 4
	// restClients is the number of concurrent HTTP clients of BenchmarkIngestREST.
	restClients = 16
	// insertSample is the number of events the one-INSERT-per-event baseline writes: it is
	// slow, and its rate does not depend on the count.
	insertSample = 3000
)

// Tuning of events-ingest under benchmark, as in production unless noted.
var ingestEnv = map[string]string{
	"INGEST_BATCH_SIZE":     "5000",
	"INGEST_FLUSH_INTERVAL": "10ms",
	"INGEST_BUFFER_EVENTS":  "200000",
	"INGEST_WRITERS":        "6",
	"DATABASE_POOL_SIZE":    "10",
}

// bench is the system under benchmark: events-ingest (and the gateway for REST) on a
// database of its own.
type bench struct {
	admin      *pgxpool.Pool // superuser, for the baselines and checks
	durability string        // the server's durability settings, for the log
	tenant     tenancy.Tenant
	ingestAddr string
	gatewayURL string
	token      string // a token of the tenant's company
}

func setup(b *testing.B, withGateway bool) *bench {
	b.Helper()
	dbURL := pgtest.URL(b)
	redisHost, redisPort, err := net.SplitHostPort(pgtest.RedisAddr(b))
	require.NoError(b, err)
	secret := randomSecret()
	bn := &bench{admin: pgtest.Open(b, dbURL)}
	bn.durability = durability(b, bn.admin)

	grpcPort, ingestAdmin := processtest.FreePort(b), processtest.FreePort(b)
	env := processEnv(redisHost, redisPort, secret, ingestAdmin)
	env["GRPC_PORT"] = strconv.Itoa(grpcPort)
	// Its own role, as in production: row-level security applies.
	env["DATABASE_URL"] = pgtest.URLAs(b, dbURL, migrations.RoleEvents)
	maps.Copy(env, ingestEnv)
	start(b, "events-ingest", ingestAdmin, env)
	bn.ingestAddr = "127.0.0.1:" + strconv.Itoa(grpcPort)

	if !withGateway {
		bn.tenant = tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
		bn.token, err = tenancy.NewSigner(secret).Sign("ingestbench", bn.tenant.CompanyID, tenancy.KindUser, time.Hour)
		require.NoError(b, err)
		return bn
	}
	httpPort, gwAdmin := processtest.FreePort(b), processtest.FreePort(b)
	env = processEnv(redisHost, redisPort, secret, gwAdmin)
	env["PORT"] = strconv.Itoa(httpPort)
	env["DATABASE_URL"] = dbURL
	env["EVENTS_GRPC_ADDR"] = bn.ingestAddr
	env["RATE_LIMIT_PER_SECOND"] = "1000000"
	env["RATE_LIMIT_BURST"] = "1000000"
	env["HTTP_BODY_LIMIT"] = strconv.Itoa(4 << 20)
	start(b, "gateway", gwAdmin, env)
	bn.gatewayURL = "http://127.0.0.1:" + strconv.Itoa(httpPort)
	bn.signUp(b)
	return bn
}

// signUp creates a company with a workspace and a domain through the gateway, as a client.
func (bn *bench) signUp(b *testing.B) {
	b.Helper()
	var res struct {
		Tokens struct {
			AccessToken string `json:"access_token"`
		} `json:"tokens"`
		Company   struct{ ID string } `json:"company"`
		Workspace struct{ ID string } `json:"workspace"`
	}
	bn.postJSON(b, "/v1/auth/signup", map[string]any{
		"company_name": "Bench", "email": "bench-" + uuid.NewString()[:8] + "@example.com",
		"password": randomSecret(), "name": "Bench",
	}, &res)
	bn.token = res.Tokens.AccessToken
	bn.tenant.CompanyID = uuid.MustParse(res.Company.ID)
	bn.tenant.WorkspaceID = uuid.MustParse(res.Workspace.ID)
	var dom struct {
		Domain struct{ ID string } `json:"domain"`
	}
	bn.postJSON(b, "/v1/workspaces/"+res.Workspace.ID+"/domains", map[string]any{"name": "bench-" + uuid.NewString()[:8] + ".example.com"}, &dom)
	bn.tenant.DomainID = uuid.MustParse(dom.Domain.ID)
}

func (bn *bench) postJSON(b *testing.B, path string, body, out any) {
	b.Helper()
	raw, err := json.Marshal(body)
	require.NoError(b, err)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, bn.gatewayURL+path, bytes.NewReader(raw))
	require.NoError(b, err)
	req.Header.Set("Content-Type", "application/json")
	if bn.token != "" {
		req.Header.Set("Authorization", "Bearer "+bn.token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(b, err)
	defer func() { _ = res.Body.Close() }()
	got, err := io.ReadAll(res.Body)
	require.NoError(b, err)
	require.Equal(b, http.StatusOK, res.StatusCode, "%s: %s", path, got)
	require.NoError(b, json.Unmarshal(got, out))
}

// row is one event as the baselines write it.
type row struct {
	id, campaign, recipient uuid.UUID
	at                      time.Time
}

func newRows(n int) []row {
	at := time.Now().Add(-time.Minute).UTC()
	campaign := uuid.New()
	out := make([]row, n)
	for i := range out {
		out[i] = row{id: uuid.New(), campaign: campaign, recipient: uuid.New(), at: at}
	}
	return out
}

const userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"

var columns = []string{"id", "company_id", "workspace_id", "domain_id", "type", "campaign_id", "recipient_id",
	"occurred_at", "user_agent", "ip", "url", "bounce_class"}

// values is r as the baselines write it. The ids are pgtype.UUID, which pgx encodes straight
// to binary, as events-ingest's store does: a uuid.UUID would go through its driver.Valuer
// after pgx tried and gave up on other plans, which costs more than the write, and the raw
// limit would not be one.
func (bn *bench) values(r row) []any {
	return []any{id(r.id), id(bn.tenant.CompanyID), id(bn.tenant.WorkspaceID), id(bn.tenant.DomainID), "open",
		id(r.campaign), id(r.recipient), r.at, userAgent, "192.0.2.1", "", ""}
}

func id(u uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }

// baselines accumulates the two baselines, measured in every round right before or right
// after the ingestion they are compared with (see run), so that both see the same machine and
// the same table.
type baselines struct {
	copied, inserted     int
	copyTime, insertTime time.Duration
}

// measure runs both baselines once: one pgx CopyFrom of perRound rows (the raw limit) and
// insertSample rows with one INSERT (one transaction) each (the naive design).
func (bs *baselines) measure(b *testing.B, bn *bench) {
	b.Helper()
	ctx := context.Background()
	rows := newRows(perRound)
	startAt := time.Now()
	copied, err := bn.admin.CopyFrom(ctx, pgx.Identifier{"events", "email_events"}, columns,
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) { return bn.values(rows[i]), nil }))
	bs.copyTime += time.Since(startAt)
	require.NoError(b, err)
	require.Equal(b, int64(len(rows)), copied)
	bs.copied += len(rows)

	rows = newRows(insertSample)
	query := `INSERT INTO ` + eventsTable + ` (` + joinColumns() + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)
		ON CONFLICT (id) DO NOTHING`
	conn, err := bn.admin.Acquire(ctx)
	require.NoError(b, err)
	defer conn.Release()
	startAt = time.Now()
	for _, r := range rows {
		_, err := conn.Exec(ctx, query, bn.values(r)...)
		require.NoError(b, err)
	}
	bs.insertTime += time.Since(startAt)
	bs.inserted += len(rows)
}

func (bs *baselines) copyRate() float64   { return float64(bs.copied) / bs.copyTime.Seconds() }
func (bs *baselines) insertRate() float64 { return float64(bs.inserted) / bs.insertTime.Seconds() }

func joinColumns() string {
	s := ""
	for i, c := range columns {
		if i > 0 {
			s += ", "
		}
		s += c
	}
	return s
}

// stored counts the tenant's events.
func (bn *bench) stored(b *testing.B) int {
	b.Helper()
	var n int
	require.NoError(b, bn.admin.QueryRow(context.Background(),
		`SELECT count(*) FROM `+eventsTable+` WHERE company_id = $1 AND domain_id = $2`, bn.tenant.CompanyID, bn.tenant.DomainID).Scan(&n))
	return n
}

// durability returns the server's durability settings as SHOW prints them. They decide what a
// commit costs, and so what the figures mean: events-ingest acknowledges a batch once its commit
// returned, which is durable only with fsync and synchronous_commit on (production, and the
// cluster `make bench` starts); with either off a commit does not wait for the disk, and the
// one-INSERT-per-event baseline, which pays one commit per event, looks far faster than it is.
func durability(b *testing.B, db *pgxpool.Pool) string {
	b.Helper()
	var fsync, syncCommit, fullPageWrites, version string
	require.NoError(b, db.QueryRow(context.Background(), `SELECT current_setting('fsync'), current_setting('synchronous_commit'),
		current_setting('full_page_writes'), current_setting('server_version')`).Scan(&fsync, &syncCommit, &fullPageWrites, &version))
	out := fmt.Sprintf("PostgreSQL %s, fsync=%s synchronous_commit=%s full_page_writes=%s", version, fsync, syncCommit, fullPageWrites)
	if fsync != "on" || syncCommit != "on" {
		out += " (commits do not wait for the disk; in production they do)"
	}
	return out
}

// run runs the iterations of an ingestion benchmark. An iteration is rounds rounds; in each,
// prepare makes a round's workload (untimed) and returns the ingestion of it, which returns
// the acknowledgement latencies; the baselines are measured right before the ingestion in
// even rounds and right after it in odd ones, so that neither side always meets the table
// emptier (the first copy of a run writes into an empty table) nor always follows the other's
// writes (their checkpoint, their autovacuum). It checks that every acknowledged event is
// stored and reports the metrics over all rounds.
func (bn *bench) run(b *testing.B, prepare func() func() ([]time.Duration, error)) {
	b.Helper()
	var (
		base    baselines
		total   int
		elapsed time.Duration
		lat     []time.Duration
	)
	before := bn.stored(b)
	for b.Loop() {
		for round := range rounds {
			b.StopTimer()
			if round%2 == 0 {
				base.measure(b, bn)
			}
			ingest := prepare()
			b.StartTimer()
			startAt := time.Now()
			l, err := ingest()
			elapsed += time.Since(startAt)
			b.StopTimer()
			require.NoError(b, err)
			lat = append(lat, l...)
			total += perRound
			if round%2 == 1 {
				base.measure(b, bn)
			}
			b.StartTimer()
		}
	}
	require.Equal(b, total+base.copied+base.inserted, bn.stored(b)-before, "every acknowledged event is stored")
	bn.report(b, total, elapsed, lat, base.copyRate(), base.insertRate())
}

// concurrently runs fn(0) to fn(n-1) at once and returns their latencies and errors together.
func concurrently(n int, fn func(i int) ([]time.Duration, error)) ([]time.Duration, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		lat  []time.Duration
		errs []error
	)
	for i := range n {
		wg.Go(func() {
			l, err := fn(i)
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, l...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return lat, errors.Join(errs...)
}

// report computes and reports the metrics of a run that ingested events in elapsed with the
// acknowledgement latencies lat.
func (bn *bench) report(b *testing.B, events int, elapsed time.Duration, lat []time.Duration, copyRate, insertRate float64) {
	b.Helper()
	rate := float64(events) / elapsed.Seconds()
	slices.Sort(lat)
	p99 := lat[min(len(lat)-1, len(lat)*99/100)]
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(rate/copyRate, "ratio-vs-copy")
	b.ReportMetric(rate/insertRate, "ratio-vs-insert")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ack-ms")
	b.ReportMetric(copyRate, "copy-events/s")
	b.ReportMetric(insertRate, "insert-events/s")
	b.Logf("%s: ingested %d events in %s: %.0f events/s; raw CopyFrom %.0f events/s, one INSERT per event %.0f events/s; p99 ack %s",
		bn.durability, events, elapsed, rate, copyRate, insertRate, p99)
}

// protoChunks is one iteration's workload as stream chunks.
func protoChunks(n int) [][]*eventsv1.Event {
	at := timestamppb.New(time.Now().Add(-time.Minute))
	campaign := uuid.NewString()
	chunks := make([][]*eventsv1.Event, 0, n/chunkSize)
	for range n / chunkSize {
		c := make([]*eventsv1.Event, chunkSize)
		for i := range c {
			c[i] = &eventsv1.Event{
				Id: uuid.NewString(), Type: eventsv1.EventType_EVENT_TYPE_OPEN, CampaignId: campaign,
				RecipientId: uuid.NewString(), OccurTime: at, UserAgent: userAgent, Ip: "192.0.2.1",
			}
		}
		chunks = append(chunks, c)
	}
	return chunks
}

// BenchmarkIngestStream ingests through IngestEventStream of a real events-ingest process:
// streams concurrent streams, chunks of chunkSize with window chunks in flight per stream,
// each acknowledged after its commit.
func BenchmarkIngestStream(b *testing.B) {
	bn := setup(b, false)
	cc, err := rpc.Dial(bn.ingestAddr)
	require.NoError(b, err)
	defer func() { _ = cc.Close() }()
	client := eventsv1.NewEventsIngestServiceClient(cc)
	ctx := tenancy.WithToken(context.Background(), bn.token)
	ws, dom := bn.tenant.WorkspaceID.String(), bn.tenant.DomainID.String()

	bn.run(b, func() func() ([]time.Duration, error) {
		chunks := protoChunks(perRound)
		return func() ([]time.Duration, error) {
			return concurrently(streams, func(s int) ([]time.Duration, error) {
				var mine [][]*eventsv1.Event
				for i := s; i < len(chunks); i += streams {
					mine = append(mine, chunks[i])
				}
				return streamOnce(ctx, client, ws, dom, mine)
			})
		}
	})
}

// streamOnce sends chunks on one stream and returns the acknowledgement latency of each.
func streamOnce(ctx context.Context, client eventsv1.EventsIngestServiceClient, ws, dom string, chunks [][]*eventsv1.Event) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.IngestEventStream(ctx)
	if err != nil {
		return nil, err
	}
	sentAt := make([]time.Time, len(chunks))
	var mu sync.Mutex
	sendErr := make(chan error, 1)
	slots := make(chan struct{}, window)
	go func() {
		for i, c := range chunks {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				sendErr <- nil // Recv reports why
				return
			}
			mu.Lock()
			sentAt[i] = time.Now()
			mu.Unlock()
			if err := stream.Send(&eventsv1.IngestEventStreamRequest{Seq: uint64(i + 1), WorkspaceId: ws, DomainId: dom, Events: c}); err != nil {
				sendErr <- nil // Recv reports why
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	lat := make([]time.Duration, 0, len(chunks))
	for {
		ack, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if len(lat) != len(chunks) {
				return lat, fmt.Errorf("%d of %d chunks acknowledged", len(lat), len(chunks))
			}
			return lat, <-sendErr
		}
		if err != nil {
			cancel()
			return lat, errors.Join(err, <-sendErr)
		}
		mu.Lock()
		lat = append(lat, time.Since(sentAt[ack.GetSeq()-1]))
		mu.Unlock()
		<-slots
		if int(ack.GetAccepted()) != chunkSize {
			cancel()
			return lat, errors.Join(fmt.Errorf("chunk %d: %d of %d accepted", ack.GetSeq(), ack.GetAccepted(), chunkSize), <-sendErr)
		}
	}
}

// restBodies is one iteration's workload as events:batch request bodies.
func restBodies(n int) [][]byte {
	at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	campaign := uuid.NewString()
	type event struct {
		ID          string `json:"id"`
		Type        string `json:"type"`
		CampaignID  string `json:"campaign_id"`
		RecipientID string `json:"recipient_id"`
		OccurTime   string `json:"occur_time"`
		UserAgent   string `json:"user_agent"`
		IP          string `json:"ip"`
	}
	bodies := make([][]byte, 0, n/chunkSize)
	for range n / chunkSize {
		evs := make([]event, chunkSize)
		for i := range evs {
			evs[i] = event{ID: uuid.NewString(), Type: "EVENT_TYPE_OPEN", CampaignID: campaign, RecipientID: uuid.NewString(),
				OccurTime: at, UserAgent: userAgent, IP: "192.0.2.1"}
		}
		raw, err := json.Marshal(map[string]any{"events": evs})
		if err != nil {
			panic(err) // plain strings always marshal
		}
		bodies = append(bodies, raw)
	}
	return bodies
}

// BenchmarkIngestREST ingests through the gateway's events:batch endpoint (REST → gRPC →
// events-ingest): restClients concurrent clients, chunkSize events per request, each answered
// after its commit.
func BenchmarkIngestREST(b *testing.B) {
	bn := setup(b, true)
	url := bn.gatewayURL + "/v1/workspaces/" + bn.tenant.WorkspaceID.String() + "/domains/" + bn.tenant.DomainID.String() + "/events:batch"
	client := &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: restClients, MaxConnsPerHost: restClients},
	}
	defer client.CloseIdleConnections()

	bn.run(b, func() func() ([]time.Duration, error) {
		bodies := restBodies(perRound)
		return func() ([]time.Duration, error) {
			return concurrently(restClients, func(c int) ([]time.Duration, error) {
				var (
					lat  []time.Duration
					errs []error
				)
				for i := c; i < len(bodies); i += restClients {
					t0 := time.Now()
					if err := post(client, url, bn.token, bodies[i]); err != nil {
						errs = append(errs, err)
					}
					lat = append(lat, time.Since(t0))
				}
				return lat, errors.Join(errs...)
			})
		}
	})
}

func post(client *http.Client, url, token string, body []byte) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("events:batch: %d %s", res.StatusCode, raw)
	}
	var got struct {
		Accepted int `json:"accepted"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		return err
	}
	if got.Accepted != chunkSize {
		return fmt.Errorf("events:batch: %d of %d accepted", got.Accepted, chunkSize)
	}
	return nil
}
