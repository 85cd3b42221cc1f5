package lint

import (
	"slices"
	"strings"

	"github.com/heraldmail/herald/migrations/lint/sqlfile"
)

// stmt is one statement with what the rules need to know about it, read
// from its normalized text. A name in sqlfile's normalized text never holds
// a space, so every field of the text is one word, name or punctuation mark.
type stmt struct {
	sqlfile.Statement
	// index is the statement's position in its file.
	index int
	// fields is Norm split at its spaces.
	fields []string

	// setting is the parameter of a SET or RESET statement ("all" for
	// RESET ALL), empty for any other statement.
	setting string
	// createTable is the table a CREATE TABLE statement creates.
	createTable string
	// alter is set for ALTER TABLE statements.
	alter *alterTable
	// idx is set for CREATE INDEX and DROP INDEX statements.
	idx *indexStmt
	// noTx is true for a statement that PostgreSQL refuses to run inside a
	// transaction block (CREATE/DROP INDEX CONCURRENTLY, REINDEX
	// CONCURRENTLY, DETACH PARTITION CONCURRENTLY).
	noTx bool
}

// alterTable is an ALTER TABLE statement split into its actions.
type alterTable struct {
	table   string
	actions [][]string
}

// indexStmt is a CREATE INDEX or DROP INDEX statement.
type indexStmt struct {
	create       bool
	concurrently bool
	// names are the index names: the one created (empty when unnamed) or
	// those dropped.
	names []string
	// table is the table a CREATE INDEX builds on.
	table string
}

func analyze(st sqlfile.Statement, index int) *stmt {
	s := &stmt{Statement: st, index: index, fields: strings.Split(st.Norm, " ")}
	c := cursor{f: s.fields}
	switch {
	case c.accept("set"):
		c.accept("session")
		c.accept("local")
		s.setting = c.take()
	case c.accept("reset"):
		s.setting = c.take()
	case c.accept("create"):
		s.analyzeCreate(&c)
	case c.accept("drop", "index"):
		ix := &indexStmt{concurrently: c.accept("concurrently")}
		c.accept("if", "exists")
		for _, part := range splitTop(c.rest(), ",") {
			if len(part) > 0 && part[0] != "cascade" && part[0] != "restrict" {
				ix.names = append(ix.names, part[0])
			}
		}
		s.idx = ix
		s.noTx = ix.concurrently
	case c.accept("reindex"):
		s.noTx = slices.Contains(s.fields, "concurrently")
	case c.accept("alter", "table"):
		s.alter = parseAlterTable(&c)
		for _, a := range s.alter.actionsStarting("detach", "partition") {
			if slices.Contains(a, "concurrently") {
				s.noTx = true
			}
		}
	}
	return s
}

func (s *stmt) analyzeCreate(c *cursor) {
	c.accept("or", "replace")
	c.accept("unique")
	if c.accept("index") {
		ix := &indexStmt{create: true, concurrently: c.accept("concurrently")}
		c.accept("if", "not", "exists")
		if c.peek() != "on" {
			ix.names = []string{c.take()}
		}
		if c.accept("on") {
			c.accept("only")
			ix.table = c.take()
		}
		s.idx = ix
		s.noTx = ix.concurrently
		return
	}
	c.accept("global")
	c.accept("local")
	if !c.accept("temporary") {
		c.accept("temp")
	}
	c.accept("unlogged")
	if c.accept("table") {
		c.accept("if", "not", "exists")
		s.createTable = c.take()
	}
}

func parseAlterTable(c *cursor) *alterTable {
	c.accept("if", "exists")
	c.accept("only")
	at := &alterTable{table: c.take()}
	c.accept("*")
	at.actions = splitTop(c.rest(), ",")
	return at
}

// actionsStarting returns the actions that begin with words.
func (at *alterTable) actionsStarting(words ...string) [][]string {
	var out [][]string
	for _, a := range at.actions {
		if len(a) >= len(words) && slices.Equal(a[:len(words)], words) {
			out = append(out, a)
		}
	}
	return out
}

// columnAction reads an ALTER TABLE action of the form
// `<verb> [COLUMN] [IF [NOT] EXISTS] name rest...`, as ADD COLUMN, ALTER
// COLUMN and DROP COLUMN are written. ok is false for another verb, or for
// an ADD that adds a table constraint.
func columnAction(action []string, verb string) (column string, rest []string, ok bool) {
	c := cursor{f: action}
	if !c.accept(verb) {
		return "", nil, false
	}
	if !c.accept("column") {
		switch c.peek() {
		case "constraint", "check", "unique", "primary", "foreign", "exclude", "":
			return "", nil, false
		}
	}
	c.accept("if", "not", "exists")
	c.accept("if", "exists")
	column = c.take()
	return sqlfile.Ident(column), c.rest(), column != ""
}

// constraintAction is an ALTER TABLE ... ADD [CONSTRAINT name] <kind> action.
type constraintAction struct {
	name string
	// kind is check, unique, primary, foreign or exclude.
	kind string
	// body is what follows the kind keyword(s).
	body     []string
	notValid bool
	// usingIndex names the index of UNIQUE/PRIMARY KEY ... USING INDEX.
	usingIndex string
}

func parseConstraintAction(action []string) (constraintAction, bool) {
	c := cursor{f: action}
	if !c.accept("add") {
		return constraintAction{}, false
	}
	var ca constraintAction
	if c.accept("constraint") {
		ca.name = c.take()
	}
	ca.kind = c.take()
	switch ca.kind {
	case "check", "unique", "exclude":
	case "primary", "foreign":
		c.accept("key")
	default:
		return constraintAction{}, false
	}
	ca.body = c.rest()
	ca.notValid = containsSeq(ca.body, "not", "valid")
	if len(ca.body) >= 3 && ca.body[0] == "using" && ca.body[1] == "index" && ca.body[2] != "tablespace" {
		ca.usingIndex = ca.body[2]
	}
	return ca, true
}

// notNullColumn returns the column of a CHECK (col IS NOT NULL) body.
func notNullColumn(body []string) (string, bool) {
	expr := body
	if n := closingParen(expr); n > 0 {
		expr = expr[:n+1]
	}
	for len(expr) >= 2 && expr[0] == "(" && closingParen(expr) == len(expr)-1 {
		expr = expr[1 : len(expr)-1]
	}
	if len(expr) == 4 && expr[1] == "is" && expr[2] == "not" && expr[3] == "null" {
		return sqlfile.Ident(expr[0]), true
	}
	return "", false
}

// closingParen returns the index of the parenthesis that closes f[0], or -1
// when f does not start with one.
func closingParen(f []string) int {
	if len(f) == 0 || f[0] != "(" {
		return -1
	}
	depth := 0
	for i, w := range f {
		switch w {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// splitTop splits fields at sep where no parenthesis is open.
func splitTop(fields []string, sep string) [][]string {
	var out [][]string
	var cur []string
	depth := 0
	for _, w := range fields {
		switch w {
		case "(":
			depth++
		case ")":
			depth--
		case sep:
			if depth == 0 {
				out = append(out, cur)
				cur = nil
				continue
			}
		}
		cur = append(cur, w)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// topLevel returns the fields outside any parentheses.
func topLevel(fields []string) []string {
	var out []string
	depth := 0
	for _, w := range fields {
		switch w {
		case "(":
			depth++
		case ")":
			depth--
		default:
			if depth == 0 {
				out = append(out, w)
			}
		}
	}
	return out
}

func containsSeq(fields []string, seq ...string) bool {
	for i := 0; i+len(seq) <= len(fields); i++ {
		if slices.Equal(fields[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

// relName splits a possibly qualified name as written in Norm into the names
// PostgreSQL sees.
func relName(norm string) []string {
	parts := strings.Split(norm, ".")
	for i, p := range parts {
		parts[i] = sqlfile.Ident(p)
	}
	return parts
}

// display writes a name as written in Norm the way it was written in the
// file: quoted parts decoded back into double quotes.
func display(norm string) string {
	parts := strings.Split(norm, ".")
	for i, p := range parts {
		if strings.HasPrefix(p, `"`) {
			parts[i] = `"` + strings.ReplaceAll(sqlfile.Ident(p), `"`, `""`) + `"`
		}
	}
	return strings.Join(parts, ".")
}

// sameRel reports whether two names written in Norm name the same relation:
// all parts equal when both are qualified, else the unqualified names.
func sameRel(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	pa, pb := relName(a), relName(b)
	if len(pa) > 1 && len(pb) > 1 {
		return slices.Equal(pa, pb)
	}
	return pa[len(pa)-1] == pb[len(pb)-1]
}

// cursor reads fields one by one.
type cursor struct {
	f []string
	i int
}

// accept moves past seq when the next fields are exactly seq.
func (c *cursor) accept(seq ...string) bool {
	if c.i+len(seq) > len(c.f) || !slices.Equal(c.f[c.i:c.i+len(seq)], seq) {
		return false
	}
	c.i += len(seq)
	return true
}

func (c *cursor) peek() string {
	if c.i >= len(c.f) {
		return ""
	}
	return c.f[c.i]
}

func (c *cursor) take() string {
	w := c.peek()
	if w != "" {
		c.i++
	}
	return w
}

func (c *cursor) rest() []string {
	return c.f[c.i:]
}
