package mail

// Tests are not scanned: fixture flags and keys are fine here.
var _ = "ff:fixture_of_a_test"
