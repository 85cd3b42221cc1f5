package flags

// Live is a fixture flag.
var Live = NewFlag("live_flag")

// NewFlag is the fixture's constructor.
func NewFlag(name string) Flag { return Flag{name: name} }

// Flag is the fixture's flag type.
type Flag struct{ name string }

// Scope is the fixture's scope.
type Scope struct{}

// Unused is registered but referenced nowhere.
var Unused = NewFlag("unused_flag")

// Undefined is declared without a definition.
var Undefined = NewFlag("undefined_flag")
