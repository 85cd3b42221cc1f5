package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/machine"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/heraldmail/herald/services/events-ingest/internal/store"
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

// storedMachine reports the stored is_machine of id, or false where the table has no such
// column (the legacy storage).
func storedMachine(t *testing.T, b bundle, id uuid.UUID) bool {
	t.Helper()
	if b.table != "events.engagement_events" {
		return false
	}
	var m bool
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT is_machine FROM events.engagement_events WHERE id = $1`, id).Scan(&m))
	return m
}

// requireMachine checks the verdict set on e and, on the partitioned storage, the one stored.
func requireMachine(t *testing.T, b bundle, e events.Event, want bool, reason machine.Reason) {
	t.Helper()
	require.Equal(t, want, e.IsMachine, "%s by %q at %s", e.Type, e.UserAgent, e.OccurredAt)
	require.Equal(t, reason, e.MachineReason)
	if b.table == "events.engagement_events" {
		require.Equal(t, want, storedMachine(t, b, e.ID))
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

		proxyOpen := pairEvent(events.TypeOpen, c, r, base.Add(10*time.Minute), proxyUA, "")
		fastClick := pairEvent(events.TypeClick, c, r, base.Add(time.Second), humanUA, "https://example.com/fast")
		humanOpen := pairEvent(events.TypeOpen, c, r, base.Add(time.Minute), humanUA, "")
		evs := []events.Event{proxyOpen, fastClick, humanOpen}
		n, err := s.Insert(ctx, b.tenant, evs)
		require.NoError(t, err)
		require.Equal(t, 3, n)

		requireMachine(t, b, evs[0], true, machine.ReasonPrivacyProxy)
		requireMachine(t, b, evs[1], true, machine.ReasonTooSoon)
		requireMachine(t, b, evs[2], false, machine.ReasonNone)
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
		// distinct link within the window is a scanner's.
		clicks := base.Add(time.Hour)
		_, err = s.Insert(ctx, b.tenant, []events.Event{
			pairEvent(events.TypeClick, c, r, clicks, humanUA, "https://example.com/1"),
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

func TestInsert_machineLookupFailureFallsBackToUserAgent(t *testing.T) {
	t.Parallel()
	opts := []store.Option{store.WithHistorySQL(`SELECT no_such_column FROM events.no_such_table`)}
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
}
