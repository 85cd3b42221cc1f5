package envdoc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/migrations/lint"
	"github.com/heraldmail/herald/tools/envdoc"
)

// TestEnvExampleMatchesCode is the configuration-honesty check: every environment variable the
// code reads is documented in .env.example with a description, and .env.example documents
// nothing the code does not read.
func TestEnvExampleMatchesCode(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)

	reads, err := envdoc.Collect(root)
	require.NoError(t, err)
	require.NotEmpty(t, reads.Vars, "no environment variable read anywhere: is the root right?")

	f, err := os.Open(filepath.Join(root, ".env.example"))
	require.NoError(t, err)
	defer f.Close()
	entries, err := envdoc.ParseExample(f)
	require.NoError(t, err)

	problems := envdoc.Problems(reads, entries)
	require.Zero(t, len(problems), ".env.example and the code disagree:\n  %s", strings.Join(problems, "\n  "))
}

func TestCollect(t *testing.T) {
	t.Parallel()
	reads, err := envdoc.Collect(filepath.Join("testdata", "tree"))
	require.NoError(t, err)

	require.Equal(t, []string{
		"BOOT_LEVEL",       // lookup("BOOT_LEVEL") in a function given os.LookupEnv, directly and forwarded
		"DIRECT",           // os.Getenv("DIRECT")
		"LEVEL",            // tag of a nested struct
		"LOCAL_CONST",      // getenv(local) with a constant declared in the function
		"LOOKED_UP",        // os.LookupEnv
		"MODE",             // os.Getenv(conf.EnvMode)
		"NAMED",            // os.Getenv(envName)
		"PORT",             // env tag
		"SECRET",           // env tag
		"SECRET_FILE",      // secret:"true"
		"VIA_LOOKUP_PARAM", // getenv("VIA_LOOKUP_PARAM") in a function given os.Getenv
		"VIA_PARAM",        // getenv(name) with name a parameter given a literal
	}, reads.Names())
	require.Len(t, reads.Unresolved, 2, "the computed name and the closure: %v", reads.Unresolved)
	require.Contains(t, reads.Unresolved[0], filepath.Join("other", "other.go"))
	require.Equal(t, filepath.Join("cmd", "app", "main.go")+":14", reads.Vars["DIRECT"][0].Pos)
}

func TestProblems(t *testing.T) {
	t.Parallel()
	reads, err := envdoc.Collect(filepath.Join("testdata", "tree"))
	require.NoError(t, err)
	f, err := os.Open(filepath.Join("testdata", "example.env"))
	require.NoError(t, err)
	defer f.Close()
	entries, err := envdoc.ParseExample(f)
	require.NoError(t, err)

	require.Equal(t, envdoc.Entry{Name: "SECRET", Commented: true, Description: "The secret.", Line: 6}, entries[1])

	problems := envdoc.Problems(reads, entries)
	for _, want := range []string{
		"undocumented: BOOT_LEVEL",
		"undocumented: VIA_PARAM",
		"documented but never read: STALE (line 10)",
		"no description: SECRET_FILE (line 7",
		"no description: LEVEL (line 8",
		"set more than once: DIRECT (line 13)",
		"unresolved: " + filepath.Join("other", "other.go") + ":8",
	} {
		require.True(t, containsPrefix(problems, want), "want a problem %q in:\n%s", want, strings.Join(problems, "\n"))
	}
	require.False(t, containsPrefix(problems, "undocumented: PORT"))
	require.False(t, containsPrefix(problems, "no description: PORT"))
}

func TestParseExampleSkipsFreeText(t *testing.T) {
	t.Parallel()
	entries, err := envdoc.ParseExample(strings.NewReader(strings.Join([]string{
		"# Herald configuration.",
		"",
		"# Listen address, e.g. host:port = where to bind.",
		"# lower=case is free text",
		"ADDR=:80",
		"#NO_SPACE=1",
	}, "\n")))
	require.NoError(t, err)
	require.Equal(t, []envdoc.Entry{
		{Name: "ADDR", Value: ":80", Description: "lower=case is free text", Line: 5},
		{Name: "NO_SPACE", Value: "1", Commented: true, Line: 6},
	}, entries)
}

// repoRoot is the directory holding go.work (lint.RepoRoot), or the test fails.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := lint.RepoRoot(".")
	require.NoError(t, err)
	return root
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
