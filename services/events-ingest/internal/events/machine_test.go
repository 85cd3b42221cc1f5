package events_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/machine"
	"github.com/heraldmail/herald/services/events-ingest/internal/events"
	"github.com/stretchr/testify/require"
)

const humanUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15"

func pairEvent(typ events.Type, p events.Pair, at time.Time, ua string) events.Event {
	return events.Event{
		ID: uuid.New(), Type: typ, OccurredAt: at, UserAgent: ua, URL: "https://example.com/" + uuid.NewString(),
		CampaignID:  uuid.NullUUID{UUID: p.CampaignID, Valid: true},
		RecipientID: uuid.NullUUID{UUID: p.RecipientID, Valid: true},
	}
}

func TestClassifyMachine(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	p := events.Pair{CampaignID: uuid.New(), RecipientID: uuid.New()}
	h := events.NewHistory()
	h.Add(p, events.TypeSent, base.Add(-time.Hour), "")
	h.Add(p, events.TypeDelivered, base, "")

	evs := []events.Event{
		pairEvent(events.TypeOpen, p, base.Add(time.Hour), "GoogleImageProxy"),
		pairEvent(events.TypeClick, p, base.Add(time.Second), humanUA),
		pairEvent(events.TypeOpen, p, base.Add(time.Minute), humanUA),
		pairEvent(events.TypeBounce, p, base, ""),
	}
	events.ClassifyMachine(machine.DefaultRules(), evs, h)
	require.Equal(t, []bool{true, true, false, false}, []bool{evs[0].IsMachine, evs[1].IsMachine, evs[2].IsMachine, evs[3].IsMachine})
	require.Equal(t, machine.ReasonPrivacyProxy, evs[0].MachineReason)
	require.Equal(t, machine.ReasonTooSoon, evs[1].MachineReason)

	// Without a history (a failed look-up) only the user agent counts, even for what the
	// batch itself would tell.
	evs = []events.Event{
		pairEvent(events.TypeDelivered, p, base, ""),
		pairEvent(events.TypeClick, p, base.Add(time.Second), humanUA),
		pairEvent(events.TypeOpen, p, base.Add(time.Second), ""),
	}
	events.ClassifyMachine(machine.DefaultRules(), evs, nil)
	require.False(t, evs[1].IsMachine)
	require.True(t, evs[2].IsMachine)
	require.Equal(t, machine.ReasonNoUserAgent, evs[2].MachineReason)

	require.Equal(t, []events.Pair{p}, events.MachinePairs(evs))
}
