package workspace_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/heraldmail/herald/tools/internal/workspace"
	"github.com/stretchr/testify/require"
)

func TestRoot(t *testing.T) {
	root, err := workspace.Root()
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.work"))
	require.NoError(t, err)
	wd, err := os.Getwd()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(root, "tools", "internal", "workspace"), wd)

	// Nowhere under a directory without go.work above it.
	t.Chdir(t.TempDir())
	_, err = workspace.Root()
	require.Error(t, err)
}
