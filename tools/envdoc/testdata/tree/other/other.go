// Package other is a fixture: a read whose name is computed.
package other

import "os"

// Read reads a variable chosen at run time.
func Read(prefix string) string {
	return os.Getenv(prefix + "_X")
}

// ReadInClosure reads through a closure parameter.
func ReadInClosure() func(string) string {
	return func(name string) string { return os.Getenv(name) }
}
