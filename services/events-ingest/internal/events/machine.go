package events

import (
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/machine"
)

// Pair is one recipient on one campaign: the scope of the timing rules of libs/machine.
type Pair struct {
	CampaignID  uuid.UUID
	RecipientID uuid.UUID
}

// PairOf returns the pair of e; ok is false when e lacks its campaign or recipient.
func PairOf(e Event) (Pair, bool) {
	if !e.CampaignID.Valid || !e.RecipientID.Valid {
		return Pair{}, false
	}
	return Pair{CampaignID: e.CampaignID.UUID, RecipientID: e.RecipientID.UUID}, true
}

// History is what was stored before a batch about its pairs, for the timing rules: the
// earliest delivered and sent time of each pair and its recent clicks.
type History struct {
	Delivered map[Pair]time.Time
	Sent      map[Pair]time.Time
	Clicks    map[Pair][]machine.Click
}

// NewHistory returns an empty history.
func NewHistory() *History {
	return &History{Delivered: map[Pair]time.Time{}, Sent: map[Pair]time.Time{}, Clicks: map[Pair][]machine.Click{}}
}

// Add records a stored event of pair p of type t at time at with url.
func (h *History) Add(p Pair, t Type, at time.Time, url string) {
	switch t {
	case TypeDelivered:
		keepEarliest(h.Delivered, p, at)
	case TypeSent:
		keepEarliest(h.Sent, p, at)
	case TypeClick:
		h.Clicks[p] = append(h.Clicks[p], machine.Click{URL: url, At: at})
	}
}

func keepEarliest(m map[Pair]time.Time, p Pair, at time.Time) {
	if cur, ok := m[p]; !ok || at.Before(cur) {
		m[p] = at
	}
}

// Lookup is what the timing rules need looked up about one pair of a batch: its delivered
// and sent events from From on, and its clicks from ClicksFrom on (none when ClicksFrom is
// zero: the pair has no click to classify in the batch).
type Lookup struct {
	Pair
	From       time.Time
	ClicksFrom time.Time
}

// Wants reports whether a stored event of the pair of type t at at is of use to the timing
// rules, that is within the bounds of l.
func (l Lookup) Wants(t Type, at time.Time) bool {
	switch t {
	case TypeDelivered, TypeSent:
		return !at.Before(l.From)
	case TypeClick:
		return !l.ClicksFrom.IsZero() && !at.Before(l.ClicksFrom)
	}
	return false
}

// Lookups returns, for the distinct pairs of the opens and clicks of evs that are not marked
// machine yet (by their user agent), in order of first appearance, the bounds of the stored
// events the timing rules of r can use for them: a delivery more than MinDelay before the
// pair's earliest open or click cannot make any of them too soon, and a click more than
// BurstWindow before its earliest click is in no burst of them. From is the earlier of the
// two bounds, so that one range of the recipient's events holds both.
func Lookups(r machine.Rules, evs []Event) []Lookup {
	at := map[Pair]int{}
	var out []Lookup
	for _, e := range evs {
		if (e.Type != TypeOpen && e.Type != TypeClick) || e.IsMachine {
			continue
		}
		p, ok := PairOf(e)
		if !ok {
			continue
		}
		from := e.OccurredAt.Add(-r.MinDelay)
		var clicksFrom time.Time
		if e.Type == TypeClick {
			clicksFrom = e.OccurredAt.Add(-r.BurstWindow)
		}
		i, seen := at[p]
		if !seen {
			at[p] = len(out)
			out = append(out, Lookup{Pair: p, From: from, ClicksFrom: clicksFrom})
			i = len(out) - 1
		}
		l := &out[i]
		if from.Before(l.From) {
			l.From = from
		}
		if !clicksFrom.IsZero() && (l.ClicksFrom.IsZero() || clicksFrom.Before(l.ClicksFrom)) {
			l.ClicksFrom = clicksFrom
		}
		if !l.ClicksFrom.IsZero() && l.ClicksFrom.Before(l.From) {
			l.From = l.ClicksFrom
		}
	}
	return out
}

// HistoryFunc looks up what was stored before a batch about the pairs ls (see Lookups). A
// nil history means the look-up failed: the batch is classified by user agent only. An error
// means the write cannot go on (its transaction is unusable).
type HistoryFunc func(ls []Lookup) (*History, error)

// ClassifyMachine sets IsMachine and MachineReason on every open and click of evs with rules
// r: by user agent first; then those a user agent does not mark and that name their campaign
// and recipient by the timing rules, with the history lookup returns for their pairs and the
// other events of evs: the delivery time of the event's pair (its earliest delivered event,
// else its earliest sent event) and the pair's clicks. lookup is called once, and only when
// there is something to look up; when it returns no history the user agent's verdicts stand.
// Other events are left human. It returns lookup's error.
//
// It runs on every batch, so it spares work: a user agent is classified once per batch (the
// same few come again and again), and an event its user agent did not mark is judged by the
// timing rules alone (machine.Rules.ClassifyTiming), and only when it has a delivery or
// clicks to judge it by.
func ClassifyMachine(r machine.Rules, evs []Event, lookup HistoryFunc) error {
	agents := map[string]machine.Verdict{}
	for i := range evs {
		e := &evs[i]
		e.IsMachine, e.MachineReason = false, machine.ReasonNone
		if e.Type != TypeOpen && e.Type != TypeClick {
			continue
		}
		v, ok := agents[e.UserAgent]
		if !ok {
			v = machine.ClassifyUserAgent(e.UserAgent)
			agents[e.UserAgent] = v
		}
		e.IsMachine, e.MachineReason = v.Machine, v.Reason
	}
	ls := Lookups(r, evs)
	if len(ls) == 0 {
		return nil
	}
	h, err := lookup(ls)
	if err != nil || h == nil {
		return err
	}
	batch := NewHistory()
	for _, e := range evs {
		if p, ok := PairOf(e); ok {
			batch.Add(p, e.Type, e.OccurredAt, e.URL)
		}
	}
	for i := range evs {
		e := &evs[i]
		typ := machine.TypeOpen
		switch {
		case e.IsMachine:
			continue
		case e.Type == TypeClick:
			typ = machine.TypeClick
		case e.Type != TypeOpen:
			continue
		}
		p, ok := PairOf(*e)
		if !ok {
			continue
		}
		c := machineContext(*e, p, h, batch)
		if c.DeliveredAt.IsZero() && len(c.RecentClicks) == 0 {
			continue // nothing to judge the timing by: the user agent's verdict stands
		}
		me := machine.Event{Type: typ, UserAgent: e.UserAgent, IP: e.IP, URL: e.URL, At: e.OccurredAt}
		// Its user agent was judged human above: the timing rules alone remain.
		v := r.ClassifyTiming(me, c)
		e.IsMachine, e.MachineReason = v.Machine, v.Reason
	}
	return nil
}

// machineContext is the context of e of pair p from the stored history h and the batch's
// own events.
func machineContext(e Event, p Pair, h, batch *History) machine.Context {
	var c machine.Context
	if at, ok := earliest(h.Delivered, batch.Delivered, p); ok {
		c.DeliveredAt = at
	} else if at, ok := earliest(h.Sent, batch.Sent, p); ok {
		c.DeliveredAt = at
	}
	if e.Type != TypeClick {
		return c
	}
	c.RecentClicks = append(c.RecentClicks, h.Clicks[p]...)
	self := false
	for _, cl := range batch.Clicks[p] {
		// The event itself is not one of its recent clicks; another click of the same URL
		// at the same time adds no distinct link, so skipping one match is enough.
		if !self && cl.URL == e.URL && cl.At.Equal(e.OccurredAt) {
			self = true
			continue
		}
		c.RecentClicks = append(c.RecentClicks, cl)
	}
	return c
}

func earliest(a, b map[Pair]time.Time, p Pair) (time.Time, bool) {
	x, okA := a[p]
	y, okB := b[p]
	switch {
	case okA && okB:
		if y.Before(x) {
			return y, true
		}
		return x, true
	case okA:
		return x, true
	case okB:
		return y, true
	}
	return time.Time{}, false
}
