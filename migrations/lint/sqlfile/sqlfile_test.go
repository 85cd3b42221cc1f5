package sqlfile_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/migrations/lint/sqlfile"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stmt is what a test expects of one statement.
type stmt struct {
	line int
	norm string
}

func statements(t *testing.T, src string) []stmt {
	t.Helper()
	f, err := sqlfile.Parse(src)
	require.NoError(t, err)
	out := make([]stmt, 0, len(f.Statements))
	for _, s := range f.Statements {
		out = append(out, stmt{line: s.Line, norm: s.Norm})
	}
	return out
}

func TestParseSplits(t *testing.T) {
	t.Parallel()

	for name, tc := range map[string]struct {
		src  string
		want []stmt
	}{
		"plain": {
			src:  "SET lock_timeout = '5s';\nSELECT 1;\n",
			want: []stmt{{1, "set lock_timeout = ''"}, {2, "select 1"}},
		},
		"semicolon in a string": {
			src:  "INSERT INTO t VALUES ('a;b');\nSELECT 2;",
			want: []stmt{{1, "insert into t values ( '' )"}, {2, "select 2"}},
		},
		"doubled quote in a string": {
			src:  "SELECT 'it''s; fine';\nSELECT 3;",
			want: []stmt{{1, "select ''"}, {2, "select 3"}},
		},
		"backslash-escaped quote in an E string": {
			src:  "SELECT E'it\\'s; fine', e'\\\\';\nSELECT 4;",
			want: []stmt{{1, "select '' , ''"}, {2, "select 4"}},
		},
		"backslash is plain in a standard string": {
			src:  "SELECT 'C:\\';\nSELECT 5;",
			want: []stmt{{1, "select ''"}, {2, "select 5"}},
		},
		"semicolon and doubled quote in a quoted identifier": {
			src:  "CREATE TABLE \"a;b\" (\"x\"\"y\" int);\nSELECT 6;",
			want: []stmt{{1, `create table "a%3Bb" ( "x%22y" int )`}, {2, "select 6"}},
		},
		"dollar-quoted body": {
			src: "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  DELETE FROM t; -- ';'\nEND;\n$$;\nSELECT 7;",
			want: []stmt{
				{1, "create function f ( ) returns void language plpgsql as $$"},
				{6, "select 7"},
			},
		},
		"tagged dollar quote holding $$": {
			src:  "DO $fn$ BEGIN PERFORM $$;$$; END $fn$;\nSELECT 8;",
			want: []stmt{{1, "do $$"}, {2, "select 8"}},
		},
		"dollar in an identifier is no quote": {
			src:  "SELECT a$b$ FROM t;\nSELECT $1;",
			want: []stmt{{1, "select a$b$ from t"}, {2, "select $1"}},
		},
		"line comment with a semicolon and a quote": {
			src:  "-- it's; a comment\nSELECT 9; -- trailing; 'x\nSELECT 10;",
			want: []stmt{{2, "select 9"}, {3, "select 10"}},
		},
		"nested block comment": {
			src:  "/* outer /* inner; */ still; ' comment */ SELECT 11;\n/*\n;\n*/\nSELECT 12;",
			want: []stmt{{1, "select 11"}, {5, "select 12"}},
		},
		"comment inside a statement": {
			src:  "ALTER TABLE t -- why; because\n  ADD COLUMN c text;",
			want: []stmt{{1, "alter table t add column c text"}},
		},
		"begin atomic body": {
			src: "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN true THEN 1 END;\n  SELECT 2;\nEND;\nSELECT 13;",
			want: []stmt{
				{1, "create or replace function f ( ) returns int language sql begin atomic select case when true then 1 end ; select 2 ; end"},
				{6, "select 13"},
			},
		},
		"transaction statements still split": {
			src:  "BEGIN;\nSELECT 14;\nCOMMIT;",
			want: []stmt{{1, "begin"}, {2, "select 14"}, {3, "commit"}},
		},
		"semicolon inside parentheses": {
			src:  "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2);\nSELECT 15;",
			want: []stmt{{1, "create rule r as on insert to t do also ( select 1 ; select 2 )"}, {2, "select 15"}},
		},
		"no final semicolon": {
			src:  "SELECT 16;\n\nSELECT\n  17\n",
			want: []stmt{{1, "select 16"}, {3, "select 17"}},
		},
		"empty statements": {
			src:  ";;\nSELECT 18;;",
			want: []stmt{{2, "select 18"}},
		},
		"qualified names, casts and case": {
			src:  "ALTER  TABLE\tRecipient.Recipients ADD COLUMN \"Weird Name\" TEXT DEFAULT 'drop table x'::text;",
			want: []stmt{{1, `alter table recipient.recipients add column "Weird%20Name" text default '' :: text`}},
		},
		"operators next to comments": {
			src:  "SELECT 1--2;\n+3;",
			want: []stmt{{1, "select 1 + 3"}},
		},
		"crlf and byte order mark": {
			src:  "\uFEFFSELECT 19;\r\n\r\nSELECT 20;\r\n",
			want: []stmt{{1, "select 19"}, {3, "select 20"}},
		},
		"prefixed strings": {
			src:  "SELECT B'10', X'1F', N'x;', U&'d\\0061t;a', U&\"d;\" FROM t;",
			want: []stmt{{1, `select '' , '' , '' , '' , "d%3B" from t`}},
		},
		"numbers": {
			src:  "SELECT 1.5, .5, 1e-3, 0x1F, 1_000;",
			want: []stmt{{1, "select 1.5 , .5 , 1e-3 , 0x1F , 1_000"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, statements(t, tc.src))
		})
	}
}

func TestParseKeepsTextAndLines(t *testing.T) {
	t.Parallel()

	src := "-- header\n\nCREATE INDEX CONCURRENTLY i\n    ON t (c);\nSELECT 'a\nb'; SELECT 2\n;"
	f, err := sqlfile.Parse(src)
	require.NoError(t, err)
	require.Len(t, f.Statements, 3)

	first := f.Statements[0]
	require.Equal(t, 3, first.Line)
	require.Equal(t, 4, first.EndLine)
	require.Equal(t, "CREATE INDEX CONCURRENTLY i\n    ON t (c)", first.Text)
	require.Equal(t, "CREATE INDEX CONCURRENTLY i", first.FirstLine())

	require.Equal(t, 5, f.Statements[1].Line)
	require.Equal(t, 6, f.Statements[1].EndLine)
	require.Equal(t, 6, f.Statements[2].Line)
	require.Equal(t, 7, f.Statements[2].EndLine)

	tok := f.Statements[1].Tokens[1]
	require.Equal(t, sqlfile.String, tok.Kind)
	require.Equal(t, "a\nb", tok.Value)
	require.Equal(t, 5, tok.Line)

	require.Equal(t, []sqlfile.Comment{{Line: 1, Text: "header", OwnLine: true}}, f.Comments)

	// Without a final semicolon a statement ends with its last token.
	f, err = sqlfile.Parse("SELECT 1;\nSELECT 'a\nb' -- tail\n\n")
	require.NoError(t, err)
	require.Equal(t, 2, f.Statements[1].Line)
	require.Equal(t, 3, f.Statements[1].EndLine)
	require.Equal(t, "SELECT 'a\nb'", f.Statements[1].Text)
}

func TestParseSyntaxErrors(t *testing.T) {
	t.Parallel()

	for name, tc := range map[string]struct {
		src  string
		line int
		msg  string
	}{
		"string":            {"SELECT 1;\nSELECT 'open;\n", 2, "string constant"},
		"quoted identifier": {"SELECT \"open;", 1, "quoted identifier"},
		"dollar quote":      {"SELECT 1;\n\nDO $body$ BEGIN END $$;", 3, "dollar-quoted string $body$"},
		"block comment":     {"/* /* */ SELECT 1;", 1, "block comment"},
		"parenthesis":       {"SELECT 1;\nSELECT (1;\nSELECT 2;", 2, "parenthesis"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := sqlfile.Parse(tc.src)
			var syntaxErr *sqlfile.SyntaxError
			require.ErrorAs(t, err, &syntaxErr)
			require.Equal(t, tc.line, syntaxErr.Line)
			require.Contains(t, syntaxErr.Msg, tc.msg)
		})
	}
}

func TestAnnotations(t *testing.T) {
	t.Parallel()

	src := `-- herald:no-transaction
-- herald:contract flag=old_import

-- herald:allow ZD009 reason: an index build may take long
SET statement_timeout = 0;
SET lock_timeout = '5s'; -- herald:allow ZD001 reason: trailing
-- an ordinary comment
-- herald:allow ZD006 reason: first
-- herald:allow ZD007 reason: second
CREATE INDEX CONCURRENTLY i ON t (c);
-- herald:allow ZD002 reason: blank line below

/* herald:allow ZD003 reason: block comments are no annotations */
-- herald:unknown	with tab
DROP TABLE t;
`
	f, err := sqlfile.Parse(src)
	require.NoError(t, err)
	require.True(t, f.NoTransaction())
	require.True(t, sqlfile.NoTransaction(src))

	all := f.Annotations()
	directives := make([]string, 0, len(all))
	for _, a := range all {
		directives = append(directives, a.Directive)
	}
	require.Equal(t, []string{"no-transaction", "contract", "allow", "allow", "allow", "allow", "allow", "unknown"}, directives)
	require.True(t, all[0].Header)
	require.Equal(t, "flag=old_import", all[1].Args)
	require.True(t, all[2].Header, "a comment above the first statement is in the header too")
	require.False(t, all[3].OwnLine)
	require.False(t, all[4].Header)
	require.Equal(t, "with tab", all[7].Args)

	above := func(i int) []string {
		var out []string
		for _, a := range f.Above(i) {
			out = append(out, a.Args)
		}
		return out
	}
	require.Equal(t, []string{"ZD009 reason: an index build may take long"}, above(0))
	require.Empty(t, above(1), "a trailing comment on the line above is not above")
	require.Equal(t, []string{"ZD006 reason: first", "ZD007 reason: second"}, above(2))
	require.Equal(t, []string{"with tab"}, above(3), "the blank line and the block comment end the run")
}

func TestNoTransaction(t *testing.T) {
	t.Parallel()

	for src, want := range map[string]bool{
		"-- herald:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);":             true,
		"/* why */\n--   herald:no-transaction   \nSELECT 1;":                         true,
		"SELECT 1;\n-- herald:no-transaction\n":                                       false,
		"-- herald:no-transactions\nSELECT 1;":                                        false,
		"-- herald:allow ZD006 reason: x\nSELECT 1;":                                  false,
		"/* herald:no-transaction */\nSELECT 1;":                                      false,
		"-- herald:no-transaction\nSELECT 'never closed":                              true,
		"-- herald:no-transaction\nSELECT 1;\n-- herald:no-transaction":               true,
		"SET lock_timeout = '5s';\n-- herald:no-transaction\nCREATE INDEX i ON t (c)": false,
	} {
		require.Equal(t, want, sqlfile.NoTransaction(src), src)
		if f, err := sqlfile.Parse(src); err == nil {
			require.Equal(t, want, f.NoTransaction(), src)
		}
	}
}

func TestIdent(t *testing.T) {
	t.Parallel()

	for _, name := range []string{"plain", "Weird Name", `quo"te`, "semi;colon", "ünï", "50%"} {
		require.Equal(t, name, sqlfile.Ident(sqlfile.CanonicalQuoted(name)))
	}
	require.Equal(t, "recipients", sqlfile.Ident("recipients"))
}
