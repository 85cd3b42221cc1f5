package lint_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/lint"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// want is one expected finding: the rule, the line, and the file (its base
// name) when the fixture is a directory.
type want struct {
	rule string
	line int
	file string
}

// got reduces findings to what a want holds.
func got(findings []lint.Finding, withFile bool) []want {
	out := make([]want, 0, len(findings))
	for _, f := range findings {
		w := want{rule: f.Rule, line: f.Line}
		if withFile {
			w.file = filepath.Base(f.File)
		}
		out = append(out, w)
	}
	return out
}

// badFixtures maps every fixture under testdata/bad to the findings it must
// produce, in the linter's order (file, line, rule). A fixture named
// ZD00N_... proves that rule N fires; some trip a second rule on purpose.
func badFixtures() map[string][]want {
	return map[string][]want{
		"ZD000_allow_without_reason.sql":  {{rule: "ZD000", line: 5}, {rule: "ZD002", line: 6}},
		"ZD000_allow_not_above.sql":       {{rule: "ZD000", line: 4}, {rule: "ZD010", line: 6}},
		"ZD000_allow_unknown_rule.sql":    {{rule: "ZD000", line: 4}, {rule: "ZD000", line: 5}},
		"ZD000_misplaced_annotations.sql": {{rule: "ZD000", line: 1}, {rule: "ZD000", line: 3}, {rule: "ZD000", line: 5}},
		"ZD000_unterminated_string.sql":   {{rule: "ZD000", line: 5}},
		"ZD001_drop_table.sql":            {{rule: "ZD001", line: 4}},
		"ZD001_drop_column.sql":           {{rule: "ZD001", line: 4}, {rule: "ZD001", line: 7}},
		"ZD001_contract_without_flag.sql": {{rule: "ZD000", line: 1}, {rule: "ZD001", line: 5}},
		"ZD002_rename.sql": {
			{rule: "ZD002", line: 4}, {rule: "ZD002", line: 5}, {rule: "ZD002", line: 6}, {rule: "ZD002", line: 7},
		},
		"ZD003_alter_column_type.sql":   {{rule: "ZD003", line: 4}, {rule: "ZD012", line: 4}, {rule: "ZD003", line: 5}},
		"ZD004_add_column_not_null.sql": {{rule: "ZD004", line: 4}},
		"ZD005_set_not_null.sql":        {{rule: "ZD005", line: 4}},
		"ZD005_validated_in_same_file": {
			{rule: "ZD005", line: 6, file: "000002_validate_and_set.up.sql"},
		},
		"ZD006_create_index.sql":                {{rule: "ZD006", line: 4}},
		"ZD006_concurrently_in_transaction.sql": {{rule: "ZD006", line: 4}},
		"ZD006_concurrently_not_alone.sql":      {{rule: "ZD006", line: 6}},
		"ZD006_drop_index.sql":                  {{rule: "ZD006", line: 5}},
		"ZD007_foreign_key.sql":                 {{rule: "ZD007", line: 4}},
		"ZD007_check.sql":                       {{rule: "ZD007", line: 4}},
		"ZD007_unique.sql":                      {{rule: "ZD007", line: 4}, {rule: "ZD007", line: 5}},
		"ZD007_validate_in_same_file.sql":       {{rule: "ZD007", line: 6}},
		"ZD007_inline_column_constraint.sql":    {{rule: "ZD007", line: 4}},
		"ZD008_no_lock_timeout.sql":             {{rule: "ZD008", line: 4}},
		"ZD008_zero_lock_timeout.sql":           {{rule: "ZD008", line: 4}},
		"ZD008_set_local_without_transaction.sql": {
			{rule: "ZD008", line: 5}, {rule: "ZD009", line: 5},
		},
		"ZD009_no_statement_timeout.sql":       {{rule: "ZD009", line: 2}},
		"ZD009_zero_outside_concurrently.sql":  {{rule: "ZD009", line: 4}},
		"ZD010_truncate.sql":                   {{rule: "ZD010", line: 4}},
		"ZD010_allow_covers_one_statement.sql": {{rule: "ZD010", line: 6}},
		"ZD011_unbounded_dml.sql":              {{rule: "ZD011", line: 4}, {rule: "ZD011", line: 5}, {rule: "ZD011", line: 7}},
		"ZD012_types.sql": {
			{rule: "ZD012", line: 4}, {rule: "ZD012", line: 4}, {rule: "ZD012", line: 4},
			{rule: "ZD012", line: 4}, {rule: "ZD012", line: 4}, {rule: "ZD012", line: 4},
			{rule: "ZD012", line: 14},
		},
	}
}

func TestBadFixtures(t *testing.T) {
	t.Parallel()

	for name, wants := range badFixtures() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			findings, err := lint.New(lint.Options{}).LintPaths(filepath.Join("testdata", "bad", name))
			require.NoError(t, err)
			require.Equal(t, wants, got(findings, !strings.HasSuffix(name, ".sql")), "%v", findings)
			for _, f := range findings {
				require.NotEmpty(t, f.Statement)
				require.NotEmpty(t, f.Message)
				require.NotEmpty(t, f.Hint)
			}
		})
	}
}

func TestEveryFixtureIsChecked(t *testing.T) {
	t.Parallel()

	table := badFixtures()
	entries, err := os.ReadDir(filepath.Join("testdata", "bad"))
	require.NoError(t, err)
	for _, e := range entries {
		require.Contains(t, table, e.Name(), "testdata/bad/%s has no expected findings", e.Name())
	}

	// Every rule has a bad fixture named for it that makes it fire.
	for _, r := range lint.Rules() {
		fires := false
		for name, wants := range table {
			if strings.HasPrefix(name, r.ID+"_") && slices.ContainsFunc(wants, func(w want) bool { return w.rule == r.ID }) {
				fires = true
			}
		}
		require.True(t, fires, "no bad fixture proves that %s fires", r.ID)
	}
}

func TestGoodFixtures(t *testing.T) {
	t.Parallel()

	entries, err := os.ReadDir(filepath.Join("testdata", "good"))
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			t.Parallel()
			findings, err := lint.New(lint.Options{}).LintPaths(filepath.Join("testdata", "good", e.Name()))
			require.NoError(t, err)
			require.Empty(t, findings)
		})
	}
}

func TestOneFileSeesItsHistory(t *testing.T) {
	t.Parallel()

	// Alone, the last step reads the validated CHECK from the files before it.
	dir := filepath.Join("testdata", "good", "ZD005_three_steps")
	findings, err := lint.New(lint.Options{}).LintPaths(filepath.Join(dir, "000003_set_not_null.up.sql"))
	require.NoError(t, err)
	require.Empty(t, findings)

	// Only the named file is reported, though its siblings are read.
	bad := filepath.Join("testdata", "bad", "ZD005_validated_in_same_file")
	findings, err = lint.New(lint.Options{}).LintPaths(filepath.Join(bad, "000001_check_not_valid.up.sql"))
	require.NoError(t, err)
	require.Empty(t, findings)

	findings, err = lint.New(lint.Options{}).LintPaths(
		filepath.Join(bad, "000002_validate_and_set.up.sql"),
		bad, // named twice: still linted once
	)
	require.NoError(t, err)
	require.Equal(t, []want{{rule: "ZD005", line: 6, file: "000002_validate_and_set.up.sql"}}, got(findings, true))
	require.Equal(t, filepath.Join(bad, "000002_validate_and_set.up.sql"), findings[0].File)
}

func TestContractStep(t *testing.T) {
	t.Parallel()
	contract := filepath.Join("testdata", "contract")

	t.Run("flag still referenced", func(t *testing.T) {
		t.Parallel()
		used := filepath.Join("testdata", "code", "used")
		findings, err := lint.New(lint.Options{CodeRoots: []string{used}}).LintPaths(contract)
		require.NoError(t, err)
		require.Equal(t, []want{{rule: "ZD001", line: 7}, {rule: "ZD001", line: 8}}, got(findings, false))
		ref := filepath.Join(used, "importer", "importer_test.go") + ":7"
		require.Contains(t, findings[0].Message, "flag legacy_import_pipeline")
		require.Contains(t, findings[0].Message, ref, "a test still using the flag counts")
	})

	t.Run("flag retired", func(t *testing.T) {
		t.Parallel()
		// The tree mentions legacy_import_pipeline_v2, another flag, and
		// the retired flag only under migrations/, which is not searched.
		unused := filepath.Join("testdata", "code", "unused")
		findings, err := lint.New(lint.Options{CodeRoots: []string{unused}}).LintPaths(contract)
		require.NoError(t, err)
		require.Empty(t, findings)
	})

	t.Run("several roots", func(t *testing.T) {
		t.Parallel()
		roots := []string{filepath.Join("testdata", "code", "unused"), filepath.Join("testdata", "code", "used")}
		findings, err := lint.New(lint.Options{CodeRoots: roots}).LintPaths(contract)
		require.NoError(t, err)
		require.Len(t, findings, 2)
	})

	t.Run("no code root", func(t *testing.T) {
		t.Parallel()
		_, err := lint.New(lint.Options{}).LintPaths(contract)
		require.ErrorContains(t, err, "no code root")
	})

	t.Run("missing code root", func(t *testing.T) {
		t.Parallel()
		_, err := lint.New(lint.Options{CodeRoots: []string{filepath.Join("testdata", "nope")}}).LintPaths(contract)
		require.ErrorContains(t, err, "search testdata/nope for flag references")
	})
}

func TestRepositoryMigrationsPass(t *testing.T) {
	t.Parallel()

	root, err := lint.RepoRoot(".")
	require.NoError(t, err)
	findings, err := lint.New(lint.Options{CodeRoots: []string{root}}).LintFS(migrations.Files())
	require.NoError(t, err)
	require.Empty(t, findings)

	// The same files read from disk.
	findings, err = lint.New(lint.Options{CodeRoots: []string{root}}).LintPaths(filepath.Join("..", "sql"))
	require.NoError(t, err)
	require.Empty(t, findings)
}

func TestLintPathsMissing(t *testing.T) {
	t.Parallel()

	_, err := lint.New(lint.Options{}).LintPaths(filepath.Join("testdata", "nope.sql"))
	require.ErrorContains(t, err, "lint testdata/nope.sql")
}

func TestRules(t *testing.T) {
	t.Parallel()

	rules := lint.Rules()
	ids := make([]string, 0, len(rules))
	for _, r := range rules {
		ids = append(ids, r.ID)
		require.NotEmpty(t, r.Title, r.ID)
		require.NotEmpty(t, r.Hint, r.ID)
	}
	require.Equal(t, []string{
		"ZD000", "ZD001", "ZD002", "ZD003", "ZD004", "ZD005", "ZD006",
		"ZD007", "ZD008", "ZD009", "ZD010", "ZD011", "ZD012",
	}, ids)
	require.Equal(t, lint.Warning, rules[12].Severity)
}

func TestRulesAreDocumented(t *testing.T) {
	t.Parallel()

	root, err := lint.RepoRoot(".")
	require.NoError(t, err)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "migrations.md"))
	require.NoError(t, err)
	for _, r := range lint.Rules() {
		require.Contains(t, string(doc), "### "+r.ID+" ", "docs/migrations.md has no section for %s", r.ID)
	}
}

func TestFindingString(t *testing.T) {
	t.Parallel()

	f := lint.Finding{
		Rule: "ZD010", Severity: lint.Error, File: "sql/x/000002_y.up.sql", Line: 4,
		Statement: "TRUNCATE x.y", Message: "no TRUNCATE", Hint: "delete in batches",
	}
	require.Equal(t, "sql/x/000002_y.up.sql:4: ZD010 error: no TRUNCATE\n    TRUNCATE x.y\n    fix: delete in batches", f.String())
	require.Equal(t, "warning", lint.Warning.String())
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()

	root, err := lint.RepoRoot(filepath.Join("testdata", "good"))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.work"))

	_, err = lint.RepoRoot(t.TempDir())
	require.ErrorContains(t, err, "no go.work")
}
