package store_test

import (
	"context"
	"crypto/md5"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/flags"
	"github.com/heraldmail/herald/libs/flags/flagstest"
	"github.com/heraldmail/herald/libs/machine"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/heraldmail/herald/services/events-ingest/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

const (
	humanUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
	proxyUA = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)

// pairEvent is an event of recipient r on campaign c at at.
func pairEvent(typ events.Type, c, r uuid.UUID, at time.Time, ua, url string) events.Event {
	e := newEvent(eventOpts{Type: typ, UserAgent: ua})
	e.CampaignID = uuid.NullUUID{UUID: c, Valid: true}
	e.RecipientID = uuid.NullUUID{UUID: r, Valid: true}
	e.OccurredAt = at
	e.URL = url
	return e
}

// partitioned reports whether b is the partitioned storage, the one that marks machine
// traffic.
func (b bundle) partitioned() bool { return b.table == "events.engagement_events" }

// requireMachine checks the verdict set on e and the one stored. The legacy storage
// classifies nothing (it has no is_machine column): every event stays human there.
func requireMachine(t *testing.T, b bundle, e events.Event, want bool, reason machine.Reason) {
	t.Helper()
	if !b.partitioned() {
		want, reason = false, machine.ReasonNone
	}
	require.Equal(t, want, e.IsMachine, "%s by %q at %s", e.Type, e.UserAgent, e.OccurredAt)
	require.Equal(t, reason, e.MachineReason)
	if b.partitioned() {
		var stored bool
		require.NoError(t, b.pool.QueryRow(context.Background(),
			`SELECT is_machine FROM events.engagement_events WHERE id = $1`, e.ID).Scan(&stored))
		require.Equal(t, want, stored, "stored is_machine of the %s by %q", e.Type, e.UserAgent)
	}
}

func TestInsert_marksMachineTraffic(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		c, r := uuid.New(), uuid.New()

		// The delivery is stored in an earlier batch; the sent event before it is not the
		// delivery time when a delivered event exists.
		_, err := s.Insert(ctx, b.tenant, []events.Event{
			pairEvent(events.TypeSent, c, r, base.Add(-10*time.Minute), "", ""),
			pairEvent(events.TypeDelivered, c, r, base, "", ""),
		})
		require.NoError(t, err)

		evs := []events.Event{
			pairEvent(events.TypeOpen, c, r, base.Add(10*time.Minute), proxyUA, ""),
			pairEvent(events.TypeClick, c, r, base.Add(time.Second), humanUA, "https://example.com/fast"),
			pairEvent(events.TypeOpen, c, r, base.Add(time.Minute), humanUA, ""),
			pairEvent(events.TypeClick, c, r, base.Add(2*time.Second), humanUA, "https://example.com/later"),
		}
		n, err := s.Insert(ctx, b.tenant, evs)
		require.NoError(t, err)
		require.Equal(t, 4, n)

		requireMachine(t, b, evs[0], true, machine.ReasonPrivacyProxy)
		requireMachine(t, b, evs[1], true, machine.ReasonTooSoon)
		requireMachine(t, b, evs[2], false, machine.ReasonNone)
		requireMachine(t, b, evs[3], false, machine.ReasonNone) // 2 s after: not too soon
	})
}

func TestInsert_machineTimingWithinBatch(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		c, r, other := uuid.New(), uuid.New(), uuid.New()

		// Only a sent event: it stands for the delivery. Another recipient's delivery
		// does not count.
		evs := []events.Event{
			pairEvent(events.TypeSent, c, r, base, "", ""),
			pairEvent(events.TypeDelivered, c, other, base.Add(time.Minute), "", ""),
			pairEvent(events.TypeOpen, c, r, base.Add(time.Second), humanUA, ""),
			pairEvent(events.TypeOpen, c, r, base.Add(time.Minute+time.Second), humanUA, ""),
		}
		_, err := s.Insert(ctx, b.tenant, evs)
		require.NoError(t, err)
		requireMachine(t, b, evs[2], true, machine.ReasonTooSoon)
		requireMachine(t, b, evs[3], false, machine.ReasonNone)

		// A burst of distinct links: one stored earlier, two in this batch; the third
		// distinct link within the window is a scanner's. The same recipient on another
		// campaign is another pair.
		clicks := base.Add(time.Hour)
		_, err = s.Insert(ctx, b.tenant, []events.Event{
			pairEvent(events.TypeClick, c, r, clicks, humanUA, "https://example.com/1"),
			pairEvent(events.TypeClick, uuid.New(), r, clicks, humanUA, "https://example.com/0"),
		})
		require.NoError(t, err)
		evs = []events.Event{
			pairEvent(events.TypeClick, c, r, clicks.Add(time.Second), humanUA, "https://example.com/2"),
			pairEvent(events.TypeClick, c, r, clicks.Add(2*time.Second), humanUA, "https://example.com/3"),
		}
		_, err = s.Insert(ctx, b.tenant, evs)
		require.NoError(t, err)
		requireMachine(t, b, evs[0], false, machine.ReasonNone)
		requireMachine(t, b, evs[1], true, machine.ReasonLinkBurst)
	})
}

// Another tenant's delivery of the same campaign and recipient ids is not this tenant's: the
// look-up reads only the tenant's own events.
func TestInsert_machineHistoryIsTheTenants(t *testing.T) {
	t.Parallel()
	eachStorage(t, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		c, r := uuid.New(), uuid.New()
		_, err := s.Insert(ctx, newTenant(), []events.Event{pairEvent(events.TypeDelivered, c, r, base, "", "")})
		require.NoError(t, err)
		evs := []events.Event{pairEvent(events.TypeOpen, c, r, base.Add(time.Second), humanUA, "")}
		_, err = s.Insert(ctx, b.tenant, evs)
		require.NoError(t, err)
		requireMachine(t, b, evs[0], false, machine.ReasonNone)
	})
}

// lookups returns the look-ups m counted, by result.
func lookups(t *testing.T, m *store.Metrics) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, result := range []string{"ok", "timeout", "failed"} {
		out[result] = store.LookupCount(m, result)
	}
	return out
}

func TestInsert_machineLookupFailureFallsBackToUserAgent(t *testing.T) {
	t.Parallel()
	m, err := store.NewMetrics(nil)
	require.NoError(t, err)
	opts := []store.Option{store.WithHistorySQL(`SELECT no_such_column FROM events.no_such_table`), store.WithMetrics(m)}
	eachStorageWith(t, opts, func(t *testing.T, s *store.Store, b bundle) {
		ctx := context.Background()
		base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
		c, r := uuid.New(), uuid.New()

		evs := []events.Event{
			pairEvent(events.TypeDelivered, c, r, base, "", ""),
			pairEvent(events.TypeClick, c, r, base.Add(time.Second), humanUA, "https://example.com/a"),
			pairEvent(events.TypeOpen, c, r, base.Add(time.Second), proxyUA, ""),
		}
		n, err := s.Insert(ctx, b.tenant, evs)
		require.NoError(t, err, "a failed look-up never fails the batch")
		require.Equal(t, 3, n)
		require.Equal(t, 3, countEvents(t, b))
		requireMachine(t, b, evs[1], false, machine.ReasonNone)
		requireMachine(t, b, evs[2], true, machine.ReasonPrivacyProxy)
	})
	// One look-up, on the partitioned storage (the legacy one classifies nothing), counted as
	// failed.
	require.Equal(t, map[string]float64{"ok": 0, "timeout": 0, "failed": 1}, lookups(t, m))
}

// checkStatementTimeout makes every insert into the partitioned table fail unless the
// statement timeout is the session's own: the look-up's must not outlive it.
func checkStatementTimeout(t *testing.T, b bundle) {
	t.Helper()
	ctx := context.Background()
	var want string
	require.NoError(t, b.events.QueryRow(ctx, `SHOW statement_timeout`).Scan(&want))
	_, err := b.pool.Exec(ctx, fmt.Sprintf(`
		CREATE FUNCTION events.check_statement_timeout() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF current_setting('statement_timeout') <> '%[1]s' THEN
				RAISE EXCEPTION 'statement_timeout is %%, not %[1]s', current_setting('statement_timeout');
			END IF;
			RETURN NULL;
		END $$;
		CREATE TRIGGER check_statement_timeout BEFORE INSERT ON events.engagement_events
			FOR EACH STATEMENT EXECUTE FUNCTION events.check_statement_timeout();`, want))
	require.NoError(t, err)
}

// A look-up that takes too long is cancelled by its own statement timeout and the batch is
// classified by user agent only; the timeout ends with the look-up, whether it failed or
// not.
func TestInsert_machineLookupTimeout(t *testing.T) {
	t.Parallel()
	p := flagstest.New(t)
	flagstest.With(t, p, flags.EventsPartitionedStorage, true)
	for _, tc := range []struct {
		name string
		opts []store.Option
		// click is the verdict on a human click a second after the delivery.
		click machine.Reason
		// counted is the result the look-up is counted under.
		counted string
	}{
		{name: "in time", click: machine.ReasonTooSoon, counted: "ok"},
		{name: "stalled", opts: []store.Option{
			// The look-up's five parameters, and a sleep far past its timeout.
			store.WithHistorySQL(`SELECT NULL::uuid, NULL::uuid, NULL::text, NULL::timestamptz, NULL::text
				FROM pg_sleep(30)
				WHERE $1::uuid IS NOT NULL AND $2::uuid[] IS NOT NULL AND $3::timestamptz IS NOT NULL AND $4::uuid[] IS NOT NULL AND $5::int IS NOT NULL`),
			store.WithHistoryTimeout(100 * time.Millisecond),
		}, click: machine.ReasonNone, counted: "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := store.NewMetrics(nil)
			require.NoError(t, err)
			s, b := setup(t, p, append(tc.opts, store.WithMetrics(m))...)
			b.table, b.timeColumn = "events.engagement_events", "created_at"
			checkStatementTimeout(t, b)
			ctx := context.Background()
			base := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
			c, r := uuid.New(), uuid.New()
			_, err = s.Insert(ctx, b.tenant, []events.Event{pairEvent(events.TypeDelivered, c, r, base, "", "")})
			require.NoError(t, err)

			evs := []events.Event{
				pairEvent(events.TypeClick, c, r, base.Add(time.Second), humanUA, "https://example.com/a"),
				pairEvent(events.TypeOpen, c, r, base.Add(time.Minute), proxyUA, ""),
			}
			_, err = s.Insert(ctx, b.tenant, evs)
			require.NoError(t, err, "the look-up's statement timeout does not outlive it")
			requireMachine(t, b, evs[0], tc.click != machine.ReasonNone, tc.click)
			requireMachine(t, b, evs[1], true, machine.ReasonPrivacyProxy)
			want := map[string]float64{"ok": 0, "timeout": 0, "failed": 0}
			want[tc.counted] = 1 // the batch of the delivery alone needed no look-up
			require.Equal(t, want, lookups(t, m))
		})
	}
}

// The look-up reads each recipient's range of the recipient index, whatever the size of the
// batch and of the domain's recent events: the per-batch scan of the domain's recent events
// (engagement_events_domain_id_created_at_idx) is what made machine marking slow down
// ingestion before that index existed.
func TestHistoryUsesRecipientIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 300000 events")
	}
	t.Parallel()
	p := flagstest.New(t)
	flagstest.With(t, p, flags.EventsPartitionedStorage, true)
	_, b := setup(t, p)
	ctx := context.Background()
	now := time.Now().UTC()
	_, err := b.pool.Exec(ctx, `SELECT events.create_engagement_partitions($1, $2)`, now.AddDate(0, 0, -7), now)
	require.NoError(t, err)

	// As under ingestion: the domain's recent events, a campaign's deliveries and opens to
	// 150000 recipients in the last hours, and another domain's as many.
	campaign := uuid.New()
	other := newTenant()
	for _, tn := range []tenancy.Tenant{b.tenant, other} {
		_, err = b.pool.Exec(ctx, `INSERT INTO events.engagement_events
			(id, company_id, workspace_id, domain_id, type, campaign_id, recipient_id, created_at, user_agent)
			SELECT gen_random_uuid(), $1, $2, $3, t.type, $4, r.id, $5::timestamptz - (n % 7200) * interval '1 second', ''
			FROM generate_series(1, 75000) AS n
			CROSS JOIN LATERAL (SELECT md5(n::text)::uuid AS id) AS r
			CROSS JOIN (VALUES ('delivered'), ('open')) AS t (type)`,
			tn.CompanyID, tn.WorkspaceID, tn.DomainID, campaign, now)
		require.NoError(t, err)
	}
	_, err = b.pool.Exec(ctx, `ANALYZE events.engagement_events`)
	require.NoError(t, err)

	// A batch of 2000 opens and clicks, half of them of recipients stored above.
	var evs []events.Event
	for i := range 2000 {
		r := uuid.New()
		if i%2 == 0 { // md5(n::text)::uuid above
			r = uuid.MustParse(fmt.Sprintf("%x", md5.Sum([]byte(strconv.Itoa(i+1)))))
		}
		typ := events.TypeOpen
		if i%3 == 0 {
			typ = events.TypeClick
		}
		evs = append(evs, pairEvent(typ, campaign, r, now.Add(-time.Duration(i)*time.Second), humanUA, "https://example.com/"))
	}
	ls := events.Lookups(machine.DefaultRules(), evs)
	require.Len(t, ls, 2000)
	recipients := make([]string, len(ls))
	from := ls[0].From
	for i, l := range ls {
		recipients[i] = l.RecipientID.String()
		if l.From.Before(from) {
			from = l.From
		}
	}
	// EXECUTE takes no bind parameters: literals.
	literals := fmt.Sprintf(`'%s', '{%s}', '%s', '{%s}', %d`, b.tenant.DomainID, strings.Join(recipients, ","),
		from.Format(time.RFC3339Nano), campaign, 50*len(ls))
	args := []any{b.tenant.DomainID, recipients, from, []uuid.UUID{campaign}, 50 * len(ls)}

	// The plan the store gets: a prepared statement under the look-up's settings.
	var plan []string
	err = tenancy.InTx(ctx, b.events, b.tenant, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, store.HistorySettingsSQL); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `PREPARE history AS `+store.HistorySQL); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `EXPLAIN (COSTS OFF) EXECUTE history(`+literals+`)`)
		if err != nil {
			return err
		}
		if plan, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DEALLOCATE history`) // it outlives the transaction
		return err
	})
	require.NoError(t, err)
	text := strings.Join(plan, "\n")
	t.Logf("plan:\n%s", text)
	// In the partition holding the events, one range of the recipient index per recipient
	// (empty partitions may be read whole: they hold nothing). A custom plan, made for the
	// values of each batch, may prefer a scan of the domain's recent events here: which is
	// why the look-up runs with a generic plan.
	part := migrations.PartitionName(now)
	require.Contains(t, text, "Index Scan using "+migrations.RecipientIndexOf(part)+" on "+part)
	require.Contains(t, text, "Index Cond: ((domain_id = $1) AND (recipient_id = ANY ($2)) AND (created_at >= $3))")
	require.NotContains(t, text, "Seq Scan on "+part+" ")
	require.NotContains(t, text, "domain_id_created_at_idx")
	require.NotContains(t, text, "Bitmap")

	// And it finds what is stored: the delivery of each stored recipient.
	var found int
	err = tenancy.InTx(ctx, b.events, b.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT count(*) FROM (`+store.HistorySQL+`) AS h WHERE h.type = 'delivered'`, args...).Scan(&found)
	})
	require.NoError(t, err)
	require.Equal(t, 1000, found)
}
