// Package workspace locates the repository from the tools' tests and benchmarks, which build
// and run the services' binaries from its root.
package workspace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Root returns the directory holding go.work at or above the working directory.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the working directory")
		}
		dir = parent
	}
}
