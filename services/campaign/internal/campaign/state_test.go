package campaign_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/services/campaign/internal/campaign"
)

// allowed is the transition table, written out pair by pair: every pair not listed here is
// forbidden.
func allowed() map[campaign.State][]campaign.State {
	return map[campaign.State][]campaign.State{
		campaign.StateDraft:     {campaign.StateScheduled},
		campaign.StateScheduled: {campaign.StateSending, campaign.StatePaused, campaign.StateCancelled},
		campaign.StateSending:   {campaign.StateSent, campaign.StatePaused, campaign.StateCancelled},
		campaign.StatePaused:    {campaign.StateScheduled, campaign.StateSending, campaign.StateCancelled},
		campaign.StateSent:      nil,
		campaign.StateCancelled: nil,
	}
}

func TestCanTransition_everyPair(t *testing.T) {
	t.Parallel()
	table := allowed()
	require.Len(t, table, len(campaign.States()))
	var nAllowed, nForbidden int
	for _, from := range campaign.States() {
		to, ok := table[from]
		require.True(t, ok, "state %s missing from the table", from)
		for _, next := range campaign.States() {
			want := false
			for _, a := range to {
				if a == next {
					want = true
				}
			}
			require.Equal(t, want, campaign.CanTransition(from, next), "%s → %s", from, next)
			if want {
				nAllowed++
			} else {
				nForbidden++
			}
		}
	}
	require.Equal(t, 10, nAllowed)
	require.Equal(t, 26, nForbidden)
}

func TestCanTransition_namedPairs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to campaign.State
		want     bool
	}{
		{campaign.StateDraft, campaign.StateScheduled, true},
		{campaign.StateScheduled, campaign.StateSending, true},
		{campaign.StateSending, campaign.StateSent, true},
		{campaign.StateSending, campaign.StatePaused, true},
		{campaign.StatePaused, campaign.StateSending, true},
		{campaign.StateScheduled, campaign.StateCancelled, true},
		// Forbidden: skipping steps, leaving a final state, going back, standing still.
		{campaign.StateDraft, campaign.StateSending, false},
		{campaign.StateDraft, campaign.StateSent, false},
		{campaign.StateDraft, campaign.StatePaused, false},
		{campaign.StateScheduled, campaign.StateSent, false},
		{campaign.StateSent, campaign.StateSending, false},
		{campaign.StateSent, campaign.StateCancelled, false},
		{campaign.StateCancelled, campaign.StateScheduled, false},
		{campaign.StateSending, campaign.StateDraft, false},
		{campaign.StatePaused, campaign.StateSent, false},
		{campaign.StateDraft, campaign.StateDraft, false},
		{campaign.StateSending, campaign.StateSending, false},
		{"", campaign.StateDraft, false},
		{campaign.StateDraft, "archived", false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, campaign.CanTransition(tc.from, tc.to), "%q → %q", tc.from, tc.to)
	}
}

func TestState(t *testing.T) {
	t.Parallel()
	for _, s := range campaign.States() {
		require.True(t, s.Valid(), s)
		terminal := s == campaign.StateSent || s == campaign.StateCancelled
		require.Equal(t, terminal, s.Terminal(), s)
		if terminal {
			for _, to := range campaign.States() {
				require.False(t, campaign.CanTransition(s, to), "%s is final but may go to %s", s, to)
			}
		}
	}
	require.False(t, campaign.State("archived").Valid())
	require.False(t, campaign.State("").Valid())
}

func TestCampaign_Transition(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 3, 4, 5, 6, 7, 0, time.UTC)
	c := campaign.Campaign{Name: "launch", State: campaign.StateDraft}

	for _, next := range []campaign.State{campaign.StateScheduled, campaign.StateSending, campaign.StatePaused, campaign.StateSending, campaign.StateSent} {
		var err error
		c, err = c.Transition(next, now)
		require.NoError(t, err)
		require.Equal(t, next, c.State)
		require.Equal(t, now, c.UpdatedAt)
	}

	got, err := c.Transition(campaign.StateCancelled, now.Add(time.Hour))
	require.ErrorIs(t, err, campaign.ErrInvalidTransition)
	require.Contains(t, err.Error(), "from sent to cancelled")
	require.Equal(t, c, got)
}
