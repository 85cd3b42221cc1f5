package lint

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/heraldmail/herald/migrations/lint/sqlfile"
)

// norm returns the normalized fields of one statement.
func norm(t *testing.T, sql string) []string {
	t.Helper()
	f, err := sqlfile.Parse(sql)
	require.NoError(t, err)
	require.Len(t, f.Statements, 1)
	return strings.Split(f.Statements[0].Norm, " ")
}

func TestNames(t *testing.T) {
	t.Parallel()

	weird := norm(t, `SELECT "Recipient"."Weird ""Table"""`)[1]
	require.Equal(t, `"Recipient"."Weird ""Table"""`, display(weird))
	require.Equal(t, "recipient.recipients", display("recipient.recipients"))

	require.True(t, sameRel("recipient.recipients", "recipients"))
	require.True(t, sameRel(`"recipients"`, "recipient.recipients"))
	require.False(t, sameRel("recipient.recipients", "campaign.recipients"))
	require.False(t, sameRel(`"Recipients"`, "recipients"))
	require.False(t, sameRel("", "recipients"))
}

func TestAnalyze(t *testing.T) {
	t.Parallel()

	analyzed := func(sql string) *stmt {
		f, err := sqlfile.Parse(sql)
		require.NoError(t, err)
		return analyze(f.Statements[0], 0)
	}

	s := analyzed("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON ONLY s.t USING btree (c)")
	require.Equal(t, &indexStmt{create: true, concurrently: true, names: []string{"i"}, table: "s.t"}, s.idx)
	require.True(t, s.noTx)

	s = analyzed("CREATE INDEX ON s.t (c)")
	require.Equal(t, &indexStmt{create: true, table: "s.t"}, s.idx)

	s = analyzed("DROP INDEX CONCURRENTLY IF EXISTS s.a, s.b CASCADE")
	require.Equal(t, &indexStmt{concurrently: true, names: []string{"s.a", "s.b"}}, s.idx)

	s = analyzed("CREATE UNLOGGED TABLE IF NOT EXISTS s.t (id uuid)")
	require.Equal(t, "s.t", s.createTable)

	s = analyzed("ALTER TABLE IF EXISTS ONLY s.t ADD COLUMN a text DEFAULT 'x, y', ALTER b SET NOT NULL, DETACH PARTITION s.p CONCURRENTLY")
	require.Equal(t, "s.t", s.alter.table)
	require.Len(t, s.alter.actions, 3)
	require.True(t, s.noTx)

	col, rest, ok := columnAction(s.alter.actions[1], "alter")
	require.True(t, ok)
	require.Equal(t, "b", col)
	require.Equal(t, []string{"set", "not", "null"}, rest)

	_, _, ok = columnAction(norm(t, "ADD CONSTRAINT c CHECK (x > 0)"), "add")
	require.False(t, ok, "a table constraint is no column")

	s = analyzed("SET LOCAL lock_timeout TO '5s'")
	require.Equal(t, "lock_timeout", s.setting)
	value, ok := settingValue(s)
	require.True(t, ok)
	require.Equal(t, "5s", value)

	_, ok = settingValue(analyzed("SET lock_timeout = DEFAULT"))
	require.False(t, ok)
}

func TestConstraintAction(t *testing.T) {
	t.Parallel()

	ca, ok := parseConstraintAction(norm(t, "ADD CONSTRAINT c CHECK ((x IS NOT NULL)) NOT VALID"))
	require.True(t, ok)
	require.Equal(t, "check", ca.kind)
	require.True(t, ca.notValid)
	col, ok := notNullColumn(ca.body)
	require.True(t, ok)
	require.Equal(t, "x", col)

	ca, ok = parseConstraintAction(norm(t, "ADD CHECK (x IS NOT NULL AND y > 0)"))
	require.True(t, ok)
	require.False(t, ca.notValid)
	_, ok = notNullColumn(ca.body)
	require.False(t, ok)

	ca, ok = parseConstraintAction(norm(t, "ADD CONSTRAINT k PRIMARY KEY USING INDEX i"))
	require.True(t, ok)
	require.Equal(t, "primary", ca.kind)
	require.Equal(t, "i", ca.usingIndex)

	ca, ok = parseConstraintAction(norm(t, "ADD UNIQUE (a) USING INDEX TABLESPACE fast"))
	require.True(t, ok)
	require.Empty(t, ca.usingIndex, "USING INDEX TABLESPACE names no index")

	_, ok = parseConstraintAction(norm(t, "ADD COLUMN a text"))
	require.False(t, ok)
}

func TestIsZeroDuration(t *testing.T) {
	t.Parallel()

	for v, want := range map[string]bool{"0": true, "0s": true, "0 ms": true, "0.0": true, "5s": false, "5000": false, "1min": false, "": false} {
		require.Equal(t, want, isZeroDuration(v), v)
	}
}

func TestParseAnnotationArgs(t *testing.T) {
	t.Parallel()
	known := map[string]bool{"ZD000": true, "ZD002": true, "ZD003": true}

	ids, problem := parseAllow("ZD002, ZD003 reason: the table is new", known)
	require.Empty(t, problem)
	require.Equal(t, []string{"ZD002", "ZD003"}, ids)

	ids, problem = parseAllow("ZD002 ZD003 Reason: x", known)
	require.Empty(t, problem)
	require.Len(t, ids, 2)

	for args, want := range map[string]string{
		"ZD002":                 "needs a reason",
		"ZD002 reason:   ":      "needs a reason",
		"reason: why":           "names no rule",
		"ZD009 reason: why":     "unknown rule",
		"ZD000 reason: why":     "cannot allow ZD000",
		"zd002 reason: lowered": "unknown rule",
	} {
		_, problem := parseAllow(args, known)
		require.Contains(t, problem, want, args)
	}

	flag, ok := parseContract("flag=recipients.new-import:v2")
	require.True(t, ok)
	require.Equal(t, "recipients.new-import:v2", flag)
	for _, args := range []string{"", "flag=", "flag=a b", "flags=x", "flag=ünï"} {
		_, ok := parseContract(args)
		require.False(t, ok, args)
	}
}
