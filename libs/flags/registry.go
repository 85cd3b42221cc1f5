package flags

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
// Herald has no flag yet; docs/flags.md says how flags are used.
func Registered() []Definition {
	return []Definition{}
}
