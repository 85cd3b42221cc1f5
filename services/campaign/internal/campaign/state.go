package campaign

// State is where a campaign is in its life. The values are the ones stored in
// campaign.campaigns.status.
type State string

// States.
const (
	// StateDraft is being edited; not scheduled yet.
	StateDraft State = "draft"
	// StateScheduled waits for its send time.
	StateScheduled State = "scheduled"
	// StateSending is handing emails to delivery.
	StateSending State = "sending"
	// StateSent has handed every email to delivery.
	StateSent State = "sent"
	// StatePaused stopped for now and can resume.
	StatePaused State = "paused"
	// StateCancelled stopped for good.
	StateCancelled State = "cancelled"
)

// States lists every state, in life order.
func States() []State {
	return []State{StateDraft, StateScheduled, StateSending, StateSent, StatePaused, StateCancelled}
}

// Valid reports whether s is one of the states.
func (s State) Valid() bool {
	switch s {
	case StateDraft, StateScheduled, StateSending, StateSent, StatePaused, StateCancelled:
		return true
	}
	return false
}

// Terminal reports whether s is final: a sent or cancelled campaign never changes state.
func (s State) Terminal() bool { return s == StateSent || s == StateCancelled }

// CanTransition reports whether a campaign may go from one state to another. The allowed
// changes:
//
//	draft     → scheduled
//	scheduled → sending, paused, cancelled
//	sending   → sent, paused, cancelled
//	paused    → scheduled, sending (resume where it stopped), cancelled
//
// Everything else is forbidden, staying in the same state included.
func CanTransition(from, to State) bool {
	switch from {
	case StateDraft:
		return to == StateScheduled
	case StateScheduled:
		return to == StateSending || to == StatePaused || to == StateCancelled
	case StateSending:
		return to == StateSent || to == StatePaused || to == StateCancelled
	case StatePaused:
		return to == StateScheduled || to == StateSending || to == StateCancelled
	}
	return false
}
