package flags

import "time"

// Registered returns the definition of every feature flag of Herald.
//
// To add a flag, declare its value next to this function and its definition in the list:
//
//	// RecipientSearchV2 serves recipient search from the trigram index.
//	var RecipientSearchV2 = NewFlag("recipient_search_v2")
//
//	{
//		Flag:            RecipientSearchV2,
//		Description:     "serve recipient search from the trigram index",
//		Default:         false,
//		Scope:           LevelWorkspace,
//		Added:           Date(2026, time.November, 25),
//		ExpectedRemoval: Date(2027, time.February, 1),
//		Owner:           "recipients",
//	},
//
// then gate the code with flags.RecipientSearchV2 and test both paths (flagstest.Both). The
// flag values are the only package-level variables of Herald: they are never reassigned.
// docs/flags.md says how flags are used.
func Registered() []Definition {
	return []Definition{
		{
			Flag:            EventsPartitionedStorage,
			Description:     "events-ingest writes engagement events to the time-partitioned events.engagement_events instead of the legacy events.email_events",
			Default:         false,
			Scope:           LevelGlobal,
			Added:           Date(2026, time.November, 26),
			ExpectedRemoval: Date(2027, time.March, 1),
			Owner:           "events",
		},
	}
}

// EventsPartitionedStorage switches the writes of engagement events from the legacy
// events.email_events to the time-partitioned events.engagement_events (expand/contract, see
// docs/migrations.md). Turn it on once every events-ingest instance runs the release that
// knows it, then run the backfill events_engagement_events; removed with the legacy table.
var EventsPartitionedStorage = NewFlag("events_partitioned_storage")
