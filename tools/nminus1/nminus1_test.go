package nminus1_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldmail/herald/migrations/lint"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// enableEnv turns the test on; it builds and runs a whole end-to-end suite.
const enableEnv = "HERALD_N_MINUS_1"

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// repoRoot is the directory holding go.work (lint.RepoRoot), or the test fails.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := lint.RepoRoot(".")
	require.NoError(t, err)
	return root
}

// TestRenameFailsTheCheck injects a migration that renames a column the previous release
// reads (recipient.recipients.email): the previous release's end-to-end tests must fail on
// it, and the check with them (exit status 1).
func TestRenameFailsTheCheck(t *testing.T) {
	if os.Getenv(enableEnv) != "1" {
		t.Skip("runs the previous release's end-to-end suite: set " + enableEnv + "=1 (make n-minus-1 does)")
	}
	t.Parallel()
	require.NotEmpty(t, os.Getenv("HERALD_TEST_DATABASE_URL"), "run it with make n-minus-1, which sets the test servers")

	rename := filepath.Join(t.TempDir(), "rename_email.up.sql")
	require.NoError(t, os.WriteFile(rename, []byte(`SET lock_timeout = '5s';
SET statement_timeout = '60s';

-- Breaks the previous release, which reads and writes email: ZD002 forbids it.
ALTER TABLE recipient.recipients RENAME COLUMN email TO email_address;
`), 0o600))

	root := repoRoot(t)
	cmd := exec.CommandContext(t.Context(), "bash", filepath.Join(root, "scripts", "n-minus-1.sh"), "--inject", "recipient:"+rename)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if err == nil && strings.Contains(out.String(), "skipping") {
		t.Skip("no previous release to check against:\n" + out.String())
	}
	var exitErr *exec.ExitError
	require.True(t, errors.As(err, &exitErr), "the check passed with a breaking migration:\n%s", out.String())
	require.Equal(t, 1, exitErr.ExitCode(), "exit status 1 (the previous release failed), not a setup failure:\n%s", out.String())
	require.Contains(t, out.String(), "injected rename_email.up.sql as recipient/")
	require.Contains(t, out.String(), "n-minus-1: FAILED: the end-to-end tests of ")
}
