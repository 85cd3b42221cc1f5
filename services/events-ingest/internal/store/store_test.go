package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/heraldmail/herald/services/events-ingest/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type bundle struct {
	// pool is a superuser pool on the store's database, for inspecting every tenant's rows.
	pool *pgxpool.Pool
	// events is the store's own pool, as the service's role.
	events *pgxpool.Pool
	tenant tenancy.Tenant
	// table is where the store writes events: the partitioned table when the flag is on.
	table string
	// timeColumn is the column of table holding the event's time.
	timeColumn string
}

// eachStorage runs fn against a store of its own, once with events_partitioned_storage on
// (events.engagement_events) and once off (events.email_events).
func eachStorage(t *testing.T, fn func(t *testing.T, s *store.Store, b bundle)) {
	t.Helper()
	eachStorageWith(t, nil, fn)
}

// eachStorageWith is eachStorage with stores made with opts as well.
func eachStorageWith(t *testing.T, opts []store.Option, fn func(t *testing.T, s *store.Store, b bundle)) {
	t.Helper()
	p := flagstest.New(t)
	flagstest.Both(t, p, flags.EventsPartitionedStorage, func(t *testing.T, on bool) {
		s, b := setup(t, p, opts...)
		require.Equal(t, on, s.Partitioned(t.Context(), b.tenant))
		if on {
			b.table, b.timeColumn = "events.engagement_events", "created_at"
		}
		fn(t, s, b)
	})
}

// setup returns a store connected as the service's role, held to its grants and to
// row-level security, checking its flag with p, made with opts as well.
func setup(t testing.TB, p flags.Provider, opts ...store.Option) (*store.Store, bundle) {
	t.Helper()
	dbURL := pgtest.URL(t)
	pool := pgtest.Open(t, pgtest.URLAs(t, dbURL, migrations.RoleEvents))
	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	return store.New(pool, ins, append([]store.Option{store.WithFlags(p)}, opts...)...), bundle{
		pool: pgtest.Open(t, dbURL), events: pool, tenant: newTenant(), table: "events.email_events", timeColumn: "occurred_at",
	}
}

func newTenant() tenancy.Tenant {
	return tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}
}

// eventOpts overrides the defaults of newEvent.
type eventOpts struct {
	Type        events.Type
	RecipientID uuid.UUID
	BounceClass string
	UserAgent   string
}

func newEvent(o eventOpts) events.Event {
	if o.Type == "" {
		o.Type = events.TypeOpen
	}
	e := events.Event{
		ID:          uuid.New(),
		Type:        o.Type,
		CampaignID:  uuid.NullUUID{UUID: uuid.New(), Valid: true},
		RecipientID: uuid.NullUUID{UUID: uuid.New(), Valid: true},
		OccurredAt:  time.Now().UTC().Truncate(time.Microsecond),
		UserAgent:   o.UserAgent,
		IP:          "192.0.2.1",
		URL:         "https://example.com/a",
		BounceClass: o.BounceClass,
	}
	if o.RecipientID != uuid.Nil {
		e.RecipientID = uuid.NullUUID{UUID: o.RecipientID, Valid: true}
	}
	return e
}

type storedEvent struct {
	CompanyID, WorkspaceID, DomainID uuid.UUID
	Type                             string
	CampaignID, RecipientID          uuid.NullUUID
	OccurredAt                       time.Time
	UserAgent, IP, URL, BounceClass  string
}

func loadEvent(t *testing.T, b bundle, id uuid.UUID) storedEvent {
	t.Helper()
	var s storedEvent
	err := b.pool.QueryRow(context.Background(), `SELECT company_id, workspace_id, domain_id, type, campaign_id,
		recipient_id, `+b.timeColumn+`, user_agent, ip, url, bounce_class FROM `+b.table+` WHERE id = $1`, id).
		Scan(&s.CompanyID, &s.WorkspaceID, &s.DomainID, &s.Type, &s.CampaignID, &s.RecipientID, &s.OccurredAt,
			&s.UserAgent, &s.IP, &s.URL, &s.BounceClass)
	require.NoError(t, err)
	return s
}

func countEvents(t *testing.T, b bundle) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(*) FROM `+b.table).Scan(&n))
	return n
}

type jobRow struct {
	Kind, Queue, State string
	Args               jobs.RecipientStatusArgs
}

func loadJobs(t *testing.T, pool *pgxpool.Pool) []jobRow {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT kind, queue, state, args FROM river.river_job ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var out []jobRow
	for rows.Next() {
		var j jobRow
		var raw []byte
		require.NoError(t, rows.Scan(&j.Kind, &j.Queue, &j.State, &raw))
		require.NoError(t, json.Unmarshal(raw, &j.Args))
		out = append(out, j)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestInsert_storesBatch(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		evs := []events.Event{newEvent(eventOpts{}), newEvent(eventOpts{Type: events.TypeClick, UserAgent: "Mozilla/5.0"}), newEvent(eventOpts{Type: events.TypeSent})}
		evs[2].CampaignID = uuid.NullUUID{}
		evs[2].RecipientID = uuid.NullUUID{}

		n, err := s.Insert(ctx, b.tenant, evs)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		require.Equal(t, 3, countEvents(t, b))

		for _, e := range evs {
			got := loadEvent(t, b, e.ID)
			require.Equal(t, storedEvent{
				CompanyID: b.tenant.CompanyID, WorkspaceID: b.tenant.WorkspaceID, DomainID: b.tenant.DomainID,
				Type: string(e.Type), CampaignID: e.CampaignID, RecipientID: e.RecipientID,
				OccurredAt: got.OccurredAt, UserAgent: e.UserAgent, IP: e.IP, URL: e.URL, BounceClass: e.BounceClass,
			}, got)
			require.True(t, e.OccurredAt.Equal(got.OccurredAt))
		}
		require.Empty(t, loadJobs(t, b.pool), "opens, clicks and sends enqueue nothing")
	})
}

func TestInsert_retryCountsOnce(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		evs := []events.Event{
			newEvent(eventOpts{}),
			newEvent(eventOpts{Type: events.TypeBounce, BounceClass: "hard"}),
			newEvent(eventOpts{Type: events.TypeUnsubscribe}),
		}

		n, err := s.Insert(ctx, b.tenant, evs)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		require.Len(t, loadJobs(t, b.pool), 2)

		n, err = s.Insert(ctx, b.tenant, evs)
		require.NoError(t, err)
		require.Equal(t, 0, n)
		require.Equal(t, 3, countEvents(t, b))
		require.Len(t, loadJobs(t, b.pool), 2, "a retried batch enqueues nothing more")

		// A batch mixing known and new events stores only the new ones.
		fresh := newEvent(eventOpts{Type: events.TypeComplaint})
		n, err = s.Insert(ctx, b.tenant, []events.Event{evs[1], fresh})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Len(t, loadJobs(t, b.pool), 3)
	})
}

// The same event twice in one batch (a client that sent it twice before either was
// acknowledged) is stored once, named once, and enqueues one job.
func TestInsert_duplicateWithinBatch(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		bounce := newEvent(eventOpts{Type: events.TypeBounce, BounceClass: "hard"})
		open := newEvent(eventOpts{})
		ids, err := s.InsertIDs(context.Background(), b.tenant, []events.Event{bounce, open, bounce})
		require.NoError(t, err)
		require.ElementsMatch(t, []uuid.UUID{bounce.ID, open.ID}, ids)
		require.Equal(t, 2, countEvents(t, b))
		require.Len(t, loadJobs(t, b.pool), 1)
	})
}

// The staging table outlives a transaction on its connection, never its rows: after a
// committed batch and after a failed one, the table is empty, and the next batch on the same
// connection stores and names its own events only.
func TestInsert_stagingEmptyBetweenBatches(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, _ *store.Store, b bundle) {
		ctx := context.Background()
		// One connection: every batch and every check below share it.
		cfg := b.events.Config() // a copy
		cfg.MaxConns = 1
		one, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		t.Cleanup(one.Close)
		ins, err := jobs.NewInserter(one)
		require.NoError(t, err)
		p := flagstest.New(t)
		flagstest.With(t, p, flags.EventsPartitionedStorage, b.table == "events.engagement_events")
		s := store.New(one, ins, store.WithFlags(p))
		staged := func() int {
			var n int
			require.NoError(t, one.QueryRow(ctx, `SELECT count(*) FROM pg_temp.`+store.StagingTable).Scan(&n))
			return n
		}

		first := []events.Event{newEvent(eventOpts{}), newEvent(eventOpts{Type: events.TypeUnsubscribe})}
		ids, err := s.InsertIDs(ctx, b.tenant, first)
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{first[0].ID, first[1].ID}, ids)
		require.Zero(t, staged())

		// A batch the table refuses (an unknown type fails its check) leaves nothing behind.
		bad := newEvent(eventOpts{})
		bad.Type = "bogus"
		_, err = s.InsertIDs(ctx, b.tenant, []events.Event{newEvent(eventOpts{}), bad})
		require.Error(t, err)
		require.Zero(t, staged())

		second := []events.Event{newEvent(eventOpts{Type: events.TypeComplaint})}
		ids, err = s.InsertIDs(ctx, b.tenant, second)
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{second[0].ID}, ids)
		require.Zero(t, staged())
		require.Equal(t, 3, countEvents(t, b))
		require.Len(t, loadJobs(t, b.pool), 2)
	})
}

// TestInsertIDs: the store names the events a write stored, so that the batcher can tell each
// caller of a shared batch which of its own events were duplicates.
func TestInsertIDs(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		var _ events.IDStore = s
		known := newEvent(eventOpts{})
		ids, err := s.InsertIDs(ctx, b.tenant, []events.Event{known})
		require.NoError(t, err)
		require.Equal(t, []uuid.UUID{known.ID}, ids)

		fresh := []events.Event{newEvent(eventOpts{}), newEvent(eventOpts{Type: events.TypeClick})}
		ids, err = s.InsertIDs(ctx, b.tenant, []events.Event{fresh[0], known, fresh[1]})
		require.NoError(t, err)
		require.ElementsMatch(t, []uuid.UUID{fresh[0].ID, fresh[1].ID}, ids)

		ids, err = s.InsertIDs(ctx, b.tenant, fresh)
		require.NoError(t, err)
		require.Empty(t, ids)
		ids, err = s.InsertIDs(ctx, b.tenant, nil)
		require.NoError(t, err)
		require.Empty(t, ids)
		require.Equal(t, 3, countEvents(t, b))
	})
}

func TestInsert_statusJobs(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		bounce := newEvent(eventOpts{Type: events.TypeBounce, BounceClass: "mailbox-full"})
		complaint := newEvent(eventOpts{Type: events.TypeComplaint})
		unsubscribe := newEvent(eventOpts{Type: events.TypeUnsubscribe})
		open := newEvent(eventOpts{})

		_, err := s.Insert(ctx, b.tenant, []events.Event{bounce, open, complaint, unsubscribe})
		require.NoError(t, err)

		want := func(e events.Event, status, reason string) jobRow {
			return jobRow{Kind: "recipient_status", Queue: jobs.QueueNotifications, State: "available", Args: jobs.RecipientStatusArgs{
				CompanyID: b.tenant.CompanyID, WorkspaceID: b.tenant.WorkspaceID, DomainID: b.tenant.DomainID,
				RecipientID: e.RecipientID.UUID, EventID: e.ID, Status: status, Reason: reason,
			}}
		}
		require.ElementsMatch(t, []jobRow{
			want(bounce, "bounced", "bounce: mailbox-full"),
			want(complaint, "complained", "complaint"),
			want(unsubscribe, "unsubscribed", "unsubscribe"),
		}, loadJobs(t, b.pool))
	})
}

// A failure after the jobs were enqueued rolls back the events and the jobs together: a
// deferred constraint trigger fails the commit, which comes after both inserts.
func TestInsert_rollsBackEventsAndJobsTogether(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		_, err := b.pool.Exec(ctx, `
		CREATE FUNCTION events.fail_marked() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.user_agent = 'fail-at-commit' THEN
				RAISE EXCEPTION 'event marked to fail' USING ERRCODE = 'check_violation';
			END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER fail_marked AFTER INSERT ON `+b.table+`
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION events.fail_marked();`)
		require.NoError(t, err)

		bounce := newEvent(eventOpts{Type: events.TypeBounce, BounceClass: "hard"})
		marked := newEvent(eventOpts{UserAgent: "fail-at-commit"})
		_, err = s.Insert(ctx, b.tenant, []events.Event{bounce, marked})
		require.Error(t, err)

		require.Equal(t, 0, countEvents(t, b))
		require.Empty(t, loadJobs(t, b.pool))

		// The same bounce without the marked event goes through, with its one job.
		n, err := s.Insert(ctx, b.tenant, []events.Event{bounce})
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.Len(t, loadJobs(t, b.pool), 1)
	})
}

func TestInsert_tenantIsolation(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		other := newTenant()
		mine := newEvent(eventOpts{Type: events.TypeBounce})
		theirs := newEvent(eventOpts{Type: events.TypeBounce})

		_, err := s.Insert(ctx, b.tenant, []events.Event{mine})
		require.NoError(t, err)
		_, err = s.Insert(ctx, other, []events.Event{theirs})
		require.NoError(t, err)

		got := loadEvent(t, b, mine.ID)
		require.Equal(t, b.tenant, tenancy.Tenant{CompanyID: got.CompanyID, WorkspaceID: got.WorkspaceID, DomainID: got.DomainID})
		got = loadEvent(t, b, theirs.ID)
		require.Equal(t, other, tenancy.Tenant{CompanyID: got.CompanyID, WorkspaceID: got.WorkspaceID, DomainID: got.DomainID})

		// Another tenant replaying a known id neither stores it again nor takes it over.
		n, err := s.Insert(ctx, other, []events.Event{mine})
		require.NoError(t, err)
		require.Equal(t, 0, n)
		got = loadEvent(t, b, mine.ID)
		require.Equal(t, b.tenant.CompanyID, got.CompanyID)

		byCompany := map[uuid.UUID]int{}
		for _, j := range loadJobs(t, b.pool) {
			byCompany[j.Args.CompanyID]++
			if j.Args.CompanyID == b.tenant.CompanyID {
				require.Equal(t, mine.ID, j.Args.EventID)
			} else {
				require.Equal(t, theirs.ID, j.Args.EventID)
				require.Equal(t, other.DomainID, j.Args.DomainID)
			}
		}
		require.Equal(t, map[uuid.UUID]int{b.tenant.CompanyID: 1, other.CompanyID: 1}, byCompany)
	})
}

func TestInsert_rejectsIncompleteTenant(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		_, err := s.Insert(context.Background(), tenancy.Tenant{CompanyID: uuid.New()}, []events.Event{newEvent(eventOpts{})})
		require.ErrorIs(t, err, tenancy.ErrInvalidTenant)
		require.Equal(t, 0, countEvents(t, b))
	})
}

func TestInsert_fullBatch(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		evs := make([]events.Event, events.MaxBatch)
		for i := range evs {
			evs[i] = newEvent(eventOpts{})
		}
		n, err := s.Insert(context.Background(), b.tenant, evs)
		require.NoError(t, err)
		require.Equal(t, events.MaxBatch, n)
		require.Equal(t, events.MaxBatch, countEvents(t, b))
	})
}

// An event whose week has no partition yet (the worker creates them ahead of time, but an old
// event, or a database the worker has not visited for weeks, may need one) gets it: the batch
// is written once the partition exists, and a retry of it still counts once.
func TestInsert_createsMissingPartition(t *testing.T) {
	t.Parallel()
	p := flagstest.New(t)
	flagstest.With(t, p, flags.EventsPartitionedStorage, true)
	s, b := setup(t, p)
	b.table, b.timeColumn = "events.engagement_events", "created_at"
	ctx := context.Background()

	old := newEvent(eventOpts{Type: events.TypeBounce, BounceClass: "hard"})
	old.OccurredAt = time.Date(2024, time.February, 29, 12, 0, 0, 0, time.UTC)
	evs := []events.Event{old, newEvent(eventOpts{})}
	n, err := s.Insert(ctx, b.tenant, evs)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.True(t, old.OccurredAt.Equal(loadEvent(t, b, old.ID).OccurredAt))
	var partition string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM events.engagement_events WHERE id = $1`, old.ID).Scan(&partition))
	require.Equal(t, "events."+migrations.PartitionName(old.OccurredAt), partition)

	n, err = s.Insert(ctx, b.tenant, evs)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 2, countEvents(t, b))
	require.Len(t, loadJobs(t, b.pool), 1)
}
