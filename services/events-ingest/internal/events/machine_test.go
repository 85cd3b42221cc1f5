package events_test

import (
	"errors"
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
	var looked []events.Lookup
	require.NoError(t, events.ClassifyMachine(machine.DefaultRules(), evs, func(ls []events.Lookup) (*events.History, error) {
		looked = ls
		return h, nil
	}))
	// The proxy's open needs no look-up: its user agent says it all.
	require.Equal(t, []events.Lookup{{Pair: p, From: base.Add(time.Second - 5*time.Second), ClicksFrom: base.Add(time.Second - 5*time.Second)}}, looked)
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
	require.NoError(t, events.ClassifyMachine(machine.DefaultRules(), evs, func([]events.Lookup) (*events.History, error) { return nil, nil }))
	require.False(t, evs[1].IsMachine)
	require.True(t, evs[2].IsMachine)
	require.Equal(t, machine.ReasonNoUserAgent, evs[2].MachineReason)

	// An error of the look-up is the caller's; nothing to look up calls nothing.
	fail := errors.New("connection lost")
	require.ErrorIs(t, events.ClassifyMachine(machine.DefaultRules(), evs, func([]events.Lookup) (*events.History, error) { return nil, fail }), fail)
	evs = []events.Event{pairEvent(events.TypeOpen, p, base, "GoogleImageProxy"), pairEvent(events.TypeBounce, p, base, "")}
	require.NoError(t, events.ClassifyMachine(machine.DefaultRules(), evs, func([]events.Lookup) (*events.History, error) {
		t.Fatal("looked up with nothing to look up")
		return nil, nil
	}))
	require.True(t, evs[0].IsMachine)
	require.False(t, evs[1].IsMachine)
}

func TestLookupWants(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	opens := events.Lookup{From: base}
	clicks := events.Lookup{From: base, ClicksFrom: base.Add(time.Minute)}
	require.True(t, opens.Wants(events.TypeDelivered, base))
	require.True(t, opens.Wants(events.TypeSent, base.Add(time.Hour)))
	require.False(t, opens.Wants(events.TypeDelivered, base.Add(-time.Nanosecond)))
	require.False(t, opens.Wants(events.TypeClick, base.Add(time.Hour)), "no click to classify")
	require.False(t, opens.Wants(events.TypeOpen, base.Add(time.Hour)))
	require.False(t, clicks.Wants(events.TypeClick, base))
	require.True(t, clicks.Wants(events.TypeClick, base.Add(time.Minute)))
}

func TestLookups(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	rules := machine.DefaultRules()
	p := events.Pair{CampaignID: uuid.New(), RecipientID: uuid.New()}
	q := events.Pair{CampaignID: p.CampaignID, RecipientID: uuid.New()}
	noCampaign := pairEvent(events.TypeOpen, p, base, humanUA)
	noCampaign.CampaignID = uuid.NullUUID{}

	evs := []events.Event{
		pairEvent(events.TypeDelivered, p, base.Add(-time.Hour), ""), // not looked up for
		pairEvent(events.TypeOpen, q, base.Add(time.Minute), humanUA),
		pairEvent(events.TypeClick, p, base.Add(time.Hour), humanUA),
		pairEvent(events.TypeOpen, p, base.Add(2*time.Hour), humanUA),
		pairEvent(events.TypeClick, p, base.Add(30*time.Minute), humanUA),
		pairEvent(events.TypeOpen, q, base, humanUA),
		noCampaign,
	}
	require.Equal(t, []events.Lookup{
		// Opens only: deliveries from MinDelay before the earliest, no clicks.
		{Pair: q, From: base.Add(-rules.MinDelay)},
		// The earliest click is the earliest open or click: clicks and deliveries from
		// BurstWindow before it.
		{Pair: p, From: base.Add(30*time.Minute - rules.BurstWindow), ClicksFrom: base.Add(30*time.Minute - rules.BurstWindow)},
	}, events.Lookups(rules, evs))

	// An open earlier than the clicks moves the delivery bound only.
	evs = []events.Event{
		pairEvent(events.TypeClick, p, base.Add(time.Hour), humanUA),
		pairEvent(events.TypeOpen, p, base, humanUA),
	}
	require.Equal(t, []events.Lookup{{Pair: p, From: base.Add(-rules.MinDelay), ClicksFrom: base.Add(time.Hour - rules.BurstWindow)}},
		events.Lookups(rules, evs))
	require.Empty(t, events.Lookups(rules, []events.Event{pairEvent(events.TypeSent, p, base, "")}))
}
