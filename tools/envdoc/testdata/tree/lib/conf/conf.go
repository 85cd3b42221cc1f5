// Package conf is a fixture: struct tags and a lookup passed in by the caller.
package conf

// Config is read through env tags.
type Config struct {
	Port   int    `env:"PORT" default:"80"`
	Secret string `env:"SECRET" secret:"true"`
	Nested struct {
		Level string `env:"LEVEL"`
	}
	Ignored string `json:"ignored"`
}

// EnvMode is a constant name read by another package.
const EnvMode = "MODE"

// Bootstrap reads through the lookup it is given.
func Bootstrap(service string, lookup func(string) (string, bool)) string {
	v, _ := lookup("BOOT_LEVEL")
	return service + v
}

// Forward passes its lookup on.
func Forward(lookup func(string) (string, bool)) string {
	return Bootstrap("x", lookup)
}
