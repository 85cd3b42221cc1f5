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

// MachinePairs returns the distinct pairs of the opens and clicks of evs: those whose
// history the timing rules need.
func MachinePairs(evs []Event) []Pair {
	seen := map[Pair]struct{}{}
	var out []Pair
	for _, e := range evs {
		if e.Type != TypeOpen && e.Type != TypeClick {
			continue
		}
		p, ok := PairOf(e)
		if !ok {
			continue
		}
		if _, dup := seen[p]; !dup {
			seen[p] = struct{}{}
			out = append(out, p)
		}
	}
	return out
}

// ClassifyMachine sets IsMachine and MachineReason on every open and click of evs with rules
// r. The user agent rules always apply; the timing rules use h (what was stored before) and
// the other events of evs: the delivery time of the event's pair (its delivered event, else
// its sent event) and the pair's clicks. A nil h (its look-up failed) classifies by user
// agent only. Other events are left human.
func ClassifyMachine(r machine.Rules, evs []Event, h *History) {
	var batch *History
	if h != nil {
		batch = NewHistory()
		for _, e := range evs {
			if p, ok := PairOf(e); ok {
				batch.Add(p, e.Type, e.OccurredAt, e.URL)
			}
		}
	}
	for i := range evs {
		e := &evs[i]
		e.IsMachine, e.MachineReason = false, machine.ReasonNone
		var typ machine.Type
		switch e.Type {
		case TypeOpen:
			typ = machine.TypeOpen
		case TypeClick:
			typ = machine.TypeClick
		default:
			continue
		}
		me := machine.Event{Type: typ, UserAgent: e.UserAgent, IP: e.IP, URL: e.URL, At: e.OccurredAt}
		var v machine.Verdict
		p, ok := PairOf(*e)
		if h == nil || !ok {
			v = machine.ClassifyUserAgent(e.UserAgent)
		} else {
			v = r.Classify(me, machineContext(*e, p, h, batch))
		}
		e.IsMachine, e.MachineReason = v.Machine, v.Reason
	}
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
