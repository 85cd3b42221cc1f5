package lint

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/heraldmail/herald/migrations/lint/sqlfile"
)

// rule is one row of the rule table.
type rule struct {
	id       string
	severity Severity
	// title says what the rule demands, in one line.
	title string
	// hint says how to fix a finding.
	hint string
	// downs is true when the rule applies to .down.sql files too. Down
	// migrations are for development, so dropping is their job (ZD001 and
	// the DROP INDEX part of ZD006 leave them alone) and the timeout rules
	// (ZD008, ZD009) are for up migrations only.
	downs bool
	// match, when set, makes every statement whose normalized text (see
	// sqlfile.Statement.Norm) matches a finding.
	match *regexp.Regexp
	// message is the message of a match finding.
	message string
	// check finds the rule's issues in a file, when match is nil.
	check func(*fileCheck) []issue
}

// RuleInfo describes one rule of the linter.
type RuleInfo struct {
	// ID is the rule id, e.g. ZD004.
	ID string
	// Severity is the severity of the rule's findings.
	Severity Severity
	// Title says what the rule demands.
	Title string
	// Hint says how to fix a finding.
	Hint string
	// Downs is true when the rule applies to down migrations too.
	Downs bool
}

// Rules lists the linter's rules in id order.
func Rules() []RuleInfo {
	rules := builtinRules()
	out := make([]RuleInfo, 0, len(rules))
	for _, r := range rules {
		out = append(out, RuleInfo{ID: r.id, Severity: r.severity, Title: r.title, Hint: r.hint, Downs: r.downs})
	}
	return out
}

// builtinRules is the rule table.
func builtinRules() []rule {
	return []rule{
		{
			id:    "ZD000",
			title: "herald: annotations are well-formed and where they apply, and the file can be split into statements",
			hint: "write `-- herald:allow ZD00N reason: <why>` on its own line directly above the statement; " +
				"`-- herald:contract flag=<flag_name>` and `-- herald:no-transaction` go in the header, before the first statement",
			downs: true,
			check: checkAnnotations,
		},
		{
			id:    "ZD001",
			title: "no DROP, except in the contract step of an expand/contract change whose flag no Go code references any more",
			hint: "stop using the object behind a feature flag, ship, retire the flag (remove it and every use from the code), " +
				"then drop the object in a migration headed `-- herald:contract flag=<flag_name>`",
			check: checkDrop,
		},
		{
			id:    "ZD002",
			title: "no RENAME: the previous release still uses the old name",
			hint: "expand/contract: add the new table or column, write both, backfill in a batched job, switch reads, " +
				"then drop the old one in a contract step",
			downs: true,
			check: checkRename,
		},
		{
			id:    "ZD003",
			title: "no column type change: it rewrites the table under an ACCESS EXCLUSIVE lock and breaks the previous release",
			hint: "add a column of the new type, write both, backfill in a batched job, switch reads, " +
				"then drop the old column in a contract step",
			downs: true,
			check: checkTypeChange,
		},
		{
			id:    "ZD004",
			title: "ADD COLUMN ... NOT NULL only with a DEFAULT",
			hint: "add the column with a constant DEFAULT, or nullable; to require a value later, " +
				"use the CHECK NOT VALID / VALIDATE / SET NOT NULL steps (ZD005)",
			downs: true,
			check: checkAddColumnNotNull,
		},
		{
			id:    "ZD005",
			title: "SET NOT NULL only when an earlier migration validated a CHECK (col IS NOT NULL)",
			hint: "three migrations: 1) ALTER TABLE t ADD CONSTRAINT t_c_not_null CHECK (c IS NOT NULL) NOT VALID; " +
				"2) ALTER TABLE t VALIDATE CONSTRAINT t_c_not_null; 3) ALTER TABLE t ALTER COLUMN c SET NOT NULL " +
				"(PostgreSQL proves it from the valid CHECK without scanning the table)",
			downs: true,
			check: checkSetNotNull,
		},
		{
			id:    "ZD006",
			title: "indexes on existing tables are built and dropped CONCURRENTLY, alone in a `-- herald:no-transaction` file",
			hint: "put CREATE INDEX CONCURRENTLY (or DROP INDEX CONCURRENTLY) in a migration of its own, headed " +
				"`-- herald:no-transaction`, with only SET lock_timeout and SET statement_timeout before it",
			downs: true,
			check: checkIndexes,
		},
		{
			id:    "ZD007",
			title: "constraints on existing tables: FOREIGN KEY and CHECK added NOT VALID, UNIQUE and PRIMARY KEY added USING INDEX",
			hint: "ADD CONSTRAINT ... NOT VALID, then VALIDATE CONSTRAINT in a later migration; for UNIQUE or PRIMARY KEY, " +
				"build a unique index CONCURRENTLY in an earlier migration, then ADD CONSTRAINT ... USING INDEX",
			downs: true,
			check: checkConstraints,
		},
		{
			id:    "ZD008",
			title: "every up migration sets lock_timeout before its first statement",
			hint:  "begin the file with SET lock_timeout = '5s'; (a plain SET, not SET LOCAL, in a no-transaction file)",
			check: checkLockTimeout,
		},
		{
			id:    "ZD009",
			title: "every up migration sets statement_timeout before its first statement",
			hint: "begin the file with SET statement_timeout = '60s'; a CONCURRENTLY file may say " +
				"SET statement_timeout = 0 (an index build may take long), but must say it",
			check: checkStatementTimeout,
		},
		{
			id:      "ZD010",
			title:   "no TRUNCATE",
			hint:    "delete in batches from a job, or retire the whole table with a contract step",
			downs:   true,
			match:   regexp.MustCompile(`^truncate( |$)`),
			message: "TRUNCATE takes an ACCESS EXCLUSIVE lock and removes every row the previous release still reads",
		},
		{
			id:    "ZD011",
			title: "no DELETE or UPDATE without WHERE",
			hint: "backfills and clean-ups run as a batched job (River, queue maintenance), not in a migration; " +
				"a statement that really touches a few rows says which with WHERE",
			downs: true,
			check: checkUnboundedDML,
		},
		{
			id:       "ZD012",
			severity: Warning,
			title:    "types: timestamptz over timestamp, bigint or uuid keys over int and serial, text over varchar(n) and char(n)",
			hint: "timestamptz for points in time; bigint GENERATED ALWAYS AS IDENTITY or uuid for keys; " +
				"text (with a CHECK on its length where that matters) for strings",
			downs: true,
			check: checkTypes,
		},
	}
}

// issue is one finding before the rule's id, severity and hint are added.
type issue struct {
	// stmt is the statement at fault; nil for an annotation or a file
	// problem, which no allow annotation can silence.
	stmt *stmt
	// line and text locate an issue without a statement.
	line int
	text string
	msg  string
}

func stmtIssue(s *stmt, format string, args ...any) issue {
	return issue{stmt: s, msg: fmt.Sprintf(format, args...)}
}

// fileCheck is what a rule's check sees of one file.
type fileCheck struct {
	file *migrationFile
	// hist is what the earlier up migrations of the schema left behind.
	hist *history
	// refs are the Go references of the contract flags.
	refs map[string][]codeRef
	// known are the rule ids.
	known map[string]bool
}

func (l *Linter) lintFile(f *migrationFile, hist *history, refs map[string][]codeRef) []Finding {
	if f.parseErr != nil {
		return []Finding{{
			Rule:      "ZD000",
			Severity:  Error,
			File:      f.name,
			Line:      f.parseErr.Line,
			Statement: sourceLine(f.src, f.parseErr.Line),
			Message:   "cannot split the file into statements: " + f.parseErr.Msg,
			Hint:      "close the quote, comment or parenthesis",
		}}
	}
	fc := &fileCheck{file: f, hist: hist, refs: refs, known: make(map[string]bool, len(l.rules))}
	for _, r := range l.rules {
		fc.known[r.id] = true
	}
	allowed := fc.allowed()

	var findings []Finding
	for _, r := range l.rules {
		if !f.up && !r.downs {
			continue
		}
		var issues []issue
		if r.match != nil {
			for _, s := range f.stmts {
				if r.match.MatchString(s.Norm) {
					issues = append(issues, stmtIssue(s, "%s", r.message))
				}
			}
		} else {
			issues = r.check(fc)
		}
		for _, is := range issues {
			fd := Finding{Rule: r.id, Severity: r.severity, File: f.name, Line: is.line, Statement: is.text, Message: is.msg, Hint: r.hint}
			if is.stmt != nil {
				if allowed[is.stmt.index][r.id] {
					continue
				}
				fd.Line, fd.Statement = is.stmt.Line, is.stmt.FirstLine()
			}
			findings = append(findings, fd)
		}
	}
	return findings
}

// allowed maps a statement's index to the rules its well-formed allow
// annotations name.
func (fc *fileCheck) allowed() map[int]map[string]bool {
	out := make(map[int]map[string]bool)
	for i := range fc.file.stmts {
		for _, a := range fc.file.parsed.Above(i) {
			if a.Directive != sqlfile.DirectiveAllow {
				continue
			}
			ids, problem := parseAllow(a.Args, fc.known)
			if problem != "" {
				continue
			}
			if out[i] == nil {
				out[i] = make(map[string]bool)
			}
			for _, id := range ids {
				out[i][id] = true
			}
		}
	}
	return out
}

// createdBefore reports whether a statement before s creates table.
func (fc *fileCheck) createdBefore(s *stmt, table string) bool {
	for _, prev := range fc.file.stmts[:s.index] {
		if sameRel(prev.createTable, table) {
			return true
		}
	}
	return false
}

// existing reports whether s alters a table that exists before the file:
// one that no earlier statement of the file creates.
func (fc *fileCheck) existing(s *stmt) bool {
	return s.alter != nil && !fc.createdBefore(s, s.alter.table)
}

// --- ZD000 -----------------------------------------------------------------

func checkAnnotations(fc *fileCheck) []issue {
	parsed := fc.file.parsed
	above := make(map[int]bool)
	for i := range fc.file.stmts {
		for _, a := range parsed.Above(i) {
			above[a.Line] = true
		}
	}
	var out []issue
	for _, a := range parsed.Annotations() {
		bad := func(format string, args ...any) {
			out = append(out, issue{line: a.Line, text: sourceLine(fc.file.src, a.Line), msg: fmt.Sprintf(format, args...)})
		}
		if !a.OwnLine {
			bad("a herald: annotation must be on a line of its own")
			continue
		}
		switch a.Directive {
		case sqlfile.DirectiveAllow:
			if !above[a.Line] {
				bad("herald:allow is not directly above a statement (no blank line may come between)")
				continue
			}
			if _, problem := parseAllow(a.Args, fc.known); problem != "" {
				bad("%s", problem)
			}
		case sqlfile.DirectiveContract:
			if !a.Header {
				bad("herald:contract belongs in the header, before the first statement")
				continue
			}
			if _, ok := parseContract(a.Args); !ok {
				bad("herald:contract needs flag=<flag_name>, the feature flag that retired the old code path")
			}
		case sqlfile.DirectiveNoTransaction:
			if !a.Header {
				bad("herald:no-transaction belongs in the header, before the first statement")
				continue
			}
			if a.Args != "" {
				bad("herald:no-transaction takes no arguments")
			}
		default:
			bad("unknown annotation herald:%s (known: allow, contract, no-transaction)", a.Directive)
		}
	}
	return out
}

// parseAllow reads the arguments of an allow annotation, `ZD002[, ZD003]
// reason: <why>`, and returns the rule ids, or what is wrong with it.
func parseAllow(args string, known map[string]bool) ([]string, string) {
	idx := strings.Index(strings.ToLower(args), "reason:")
	if idx < 0 || strings.TrimSpace(args[idx+len("reason:"):]) == "" {
		return nil, "herald:allow needs a reason, visible in review: -- herald:allow ZD00N reason: <why>"
	}
	ids := strings.FieldsFunc(args[:idx], func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	if len(ids) == 0 {
		return nil, "herald:allow names no rule: -- herald:allow ZD00N reason: <why>"
	}
	for _, id := range ids {
		switch {
		case id == "ZD000":
			return nil, "herald:allow cannot allow ZD000"
		case !known[id]:
			return nil, fmt.Sprintf("herald:allow names unknown rule %q", id)
		}
	}
	return ids, ""
}

// parseContract reads the arguments of a contract annotation,
// `flag=<flag_name>`. A flag name holds ASCII letters, digits and _ . : -
// only, as the registry's names and the Redis keys built from them do.
func parseContract(args string) (string, bool) {
	flag, ok := strings.CutPrefix(args, "flag=")
	if !ok || flag == "" {
		return "", false
	}
	for _, r := range flag {
		plain := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !plain && !strings.ContainsRune("_.:-", r) {
			return "", false
		}
	}
	return flag, true
}

// --- ZD001 -----------------------------------------------------------------

func checkDrop(fc *fileCheck) []issue {
	var contract *sqlfile.Annotation
	for _, a := range fc.file.parsed.Annotations() {
		if a.Header && a.Directive == sqlfile.DirectiveContract {
			contract = &a
			break
		}
	}
	var out []issue
	for _, s := range fc.file.stmts {
		what := dropWhat(s)
		if what == "" {
			continue
		}
		if contract == nil {
			out = append(out, stmtIssue(s, "%s outside the contract step of an expand/contract change: the previous release may still use it", what))
			continue
		}
		flag, ok := parseContract(contract.Args)
		if !ok {
			out = append(out, stmtIssue(s, "%s: the contract annotation on line %d names no valid flag", what, contract.Line))
			continue
		}
		if refs := fc.refs[flag]; len(refs) > 0 {
			out = append(out, stmtIssue(s, "%s in the contract step of flag %s, but Go code still references the flag: %s",
				what, flag, summarizeRefs(refs)))
		}
	}
	return out
}

// dropWhat names what s drops: "DROP TABLE", "ALTER TABLE ... DROP
// COLUMN", ...; empty when s drops nothing.
func dropWhat(s *stmt) string {
	f := s.fields
	switch f[0] {
	case "drop":
		what := "DROP " + strings.ToUpper(at(f, 1))
		switch at(f, 1) {
		case "materialized", "foreign", "event", "text", "access", "operator", "user", "default":
			what += " " + strings.ToUpper(at(f, 2))
		}
		return what
	case "alter":
		top := topLevel(f)
		i := slices.Index(top, "drop")
		if i < 0 {
			return ""
		}
		object := "DROP COLUMN"
		switch next := at(top, i+1); next {
		case "not":
			object = "DROP NOT NULL"
		case "column", "constraint", "default", "identity", "expression", "attribute", "value", "function", "operator", "type", "table", "view":
			object = "DROP " + strings.ToUpper(next)
		}
		return "ALTER " + strings.ToUpper(at(f, 1)) + " ... " + object
	}
	return ""
}

func summarizeRefs(refs []codeRef) string {
	s := refs[0].String()
	if len(refs) > 1 {
		s += fmt.Sprintf(" and %d more", len(refs)-1)
	}
	return s
}

// --- ZD002, ZD003, ZD004, ZD005 --------------------------------------------

func checkRename(fc *fileCheck) []issue {
	var out []issue
	for _, s := range fc.file.stmts {
		if s.fields[0] != "alter" || (s.alter != nil && !fc.existing(s)) {
			continue
		}
		if slices.Contains(topLevel(s.fields), "rename") {
			out = append(out, stmtIssue(s, "ALTER %s ... RENAME: the previous release still uses the old name", strings.ToUpper(at(s.fields, 1))))
		}
	}
	return out
}

func checkTypeChange(fc *fileCheck) []issue {
	var out []issue
	for _, s := range fc.file.stmts {
		if !fc.existing(s) {
			continue
		}
		for _, a := range s.alter.actions {
			col, rest, ok := columnAction(a, "alter")
			if ok && (at(rest, 0) == "type" || at(rest, 0) == "set" && at(rest, 1) == "data" && at(rest, 2) == "type") {
				out = append(out, stmtIssue(s, "ALTER COLUMN %s TYPE rewrites %s under an ACCESS EXCLUSIVE lock, and the previous release expects the old type", col, display(s.alter.table)))
			}
		}
	}
	return out
}

func checkAddColumnNotNull(fc *fileCheck) []issue {
	var out []issue
	for _, s := range fc.file.stmts {
		if !fc.existing(s) {
			continue
		}
		for _, a := range s.alter.actions {
			col, rest, ok := columnAction(a, "add")
			if !ok {
				continue
			}
			top := topLevel(rest)
			if containsSeq(top, "not", "null") && !slices.Contains(top, "default") {
				out = append(out, stmtIssue(s, "ADD COLUMN %s ... NOT NULL without a DEFAULT fails on a table with rows, and the previous release does not write %s", col, col))
			}
		}
	}
	return out
}

func checkSetNotNull(fc *fileCheck) []issue {
	var out []issue
	for _, s := range fc.file.stmts {
		if !fc.existing(s) {
			continue
		}
		for _, a := range s.alter.actions {
			col, rest, ok := columnAction(a, "alter")
			if !ok || !slices.Equal(rest, []string{"set", "not", "null"}) {
				continue
			}
			if !fc.hist.validatedNotNull(s.alter.table, col) {
				out = append(out, stmtIssue(s, "SET NOT NULL on %s scans all of %s under an ACCESS EXCLUSIVE lock: no earlier migration validated a CHECK (%s IS NOT NULL)", col, display(s.alter.table), col))
			}
		}
	}
	return out
}

// --- ZD006 -----------------------------------------------------------------

func checkIndexes(fc *fileCheck) []issue {
	f := fc.file
	noTxFile := f.parsed.NoTransaction()
	var out []issue
	var work []*stmt // the statements other than SET and RESET
	for _, s := range f.stmts {
		if s.setting == "" {
			work = append(work, s)
		}
		switch {
		case s.idx != nil && s.idx.create && !s.idx.concurrently && !fc.createdBefore(s, s.idx.table):
			out = append(out, stmtIssue(s, "CREATE INDEX on existing table %s without CONCURRENTLY blocks writes to it for the whole build", display(s.idx.table)))
		case s.idx != nil && !s.idx.create && !s.idx.concurrently && f.up && !fc.indexesCreatedBefore(s, s.idx.names):
			out = append(out, stmtIssue(s, "DROP INDEX without CONCURRENTLY waits for, then blocks, every query on the table"))
		case s.fields[0] == "reindex" && !s.noTx:
			out = append(out, stmtIssue(s, "REINDEX without CONCURRENTLY blocks writes, and reads through the index, for the whole rebuild"))
		}
		if s.noTx && !noTxFile {
			out = append(out, stmtIssue(s, "CONCURRENTLY cannot run inside a transaction block, and the runner runs this file as one transaction: head the file with -- herald:no-transaction and keep the statement alone in it"))
		}
	}
	if noTxFile && len(work) > 1 {
		for _, s := range work[1:] {
			out = append(out, stmtIssue(s, "this file runs without a transaction, one statement at a time: if this statement fails, those before it stay applied; give it a migration of its own"))
		}
	}
	return out
}

// indexesCreatedBefore reports whether statements before s create every
// index in names.
func (fc *fileCheck) indexesCreatedBefore(s *stmt, names []string) bool {
	for _, name := range names {
		found := false
		for _, prev := range fc.file.stmts[:s.index] {
			if prev.idx != nil && prev.idx.create && len(prev.idx.names) == 1 && sameRel(prev.idx.names[0], name) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return len(names) > 0
}

// --- ZD007 -----------------------------------------------------------------

func checkConstraints(fc *fileCheck) []issue {
	var out []issue
	// notValid are the constraints added NOT VALID by this file, as
	// table + name.
	var notValid [][2]string
	for _, s := range fc.file.stmts {
		if !fc.existing(s) {
			continue
		}
		table := s.alter.table
		for _, a := range s.alter.actions {
			if ca, ok := parseConstraintAction(a); ok {
				out = append(out, constraintIssues(fc, s, ca)...)
				if ca.notValid {
					notValid = append(notValid, [2]string{table, ca.name})
				}
				continue
			}
			if col, rest, ok := columnAction(a, "add"); ok {
				top := topLevel(rest)
				for _, kw := range []string{"references", "check", "unique", "primary"} {
					if slices.Contains(top, kw) {
						out = append(out, stmtIssue(s, "ADD COLUMN %s with an inline %s constraint checks or indexes all of %s under lock", col, strings.ToUpper(kw), display(table)))
					}
				}
				continue
			}
			c := cursor{f: a}
			if c.accept("validate", "constraint") {
				name := c.take()
				if slices.ContainsFunc(notValid, func(tn [2]string) bool {
					return sameRel(tn[0], table) && sqlfile.Ident(tn[1]) == sqlfile.Ident(name)
				}) {
					out = append(out, stmtIssue(s, "VALIDATE CONSTRAINT %s in the migration that adds it NOT VALID holds that lock for the whole scan: validate it in a later migration", display(name)))
				}
			}
		}
	}
	return out
}

func constraintIssues(fc *fileCheck, s *stmt, ca constraintAction) []issue {
	name := display(ca.name)
	if name == "" {
		name = "(unnamed)"
	}
	switch ca.kind {
	case "check", "foreign":
		if !ca.notValid {
			kind := "CHECK"
			if ca.kind == "foreign" {
				kind = "FOREIGN KEY"
			}
			return []issue{stmtIssue(s, "ADD CONSTRAINT %s %s without NOT VALID checks every row of %s under lock", name, kind, display(s.alter.table))}
		}
	case "unique", "primary":
		kind := "UNIQUE"
		if ca.kind == "primary" {
			kind = "PRIMARY KEY"
		}
		switch {
		case ca.usingIndex == "":
			return []issue{stmtIssue(s, "ADD CONSTRAINT %s %s builds its index on %s under an ACCESS EXCLUSIVE lock", name, kind, display(s.alter.table))}
		case !fc.hist.builtConcurrently(ca.usingIndex):
			return []issue{stmtIssue(s, "ADD CONSTRAINT %s %s USING INDEX %s: no earlier migration builds that index CONCURRENTLY", name, kind, display(ca.usingIndex))}
		}
	case "exclude":
		return []issue{stmtIssue(s, "ADD CONSTRAINT %s EXCLUDE builds its index on %s under an ACCESS EXCLUSIVE lock, and cannot use a concurrent build", name, display(s.alter.table))}
	}
	return nil
}

// --- ZD008, ZD009 ----------------------------------------------------------

// timeout is the state of one timeout setting at a point of a file.
type timeout struct {
	set   bool
	zero  bool
	local bool
}

// timeoutsAtFirstStatement returns the first statement of the file other
// than SET, RESET and SHOW, and the two timeouts as they stand before it;
// nil when there is none.
func (fc *fileCheck) timeoutsAtFirstStatement() (first *stmt, lock, statement timeout) {
	for _, s := range fc.file.stmts {
		switch s.fields[0] {
		case "set":
			var t *timeout
			switch s.setting {
			case "lock_timeout":
				t = &lock
			case "statement_timeout":
				t = &statement
			default:
				continue
			}
			value, ok := settingValue(s)
			*t = timeout{set: ok, zero: ok && isZeroDuration(value), local: at(s.fields, 1) == "local"}
		case "reset":
			if s.setting == "lock_timeout" || s.setting == "all" {
				lock = timeout{}
			}
			if s.setting == "statement_timeout" || s.setting == "all" {
				statement = timeout{}
			}
		case "show":
		default:
			return s, lock, statement
		}
	}
	return nil, lock, statement
}

// settingValue returns the value a SET statement gives its parameter; false
// for DEFAULT, which sets nothing.
func settingValue(s *stmt) (string, bool) {
	for i, t := range s.Tokens {
		if t.Kind == sqlfile.Punct && t.Text == "=" || t.Kind == sqlfile.Word && t.Value == "to" {
			var parts []string
			for _, v := range s.Tokens[i+1:] {
				parts = append(parts, v.Value)
			}
			value := strings.Join(parts, " ")
			return value, value != "" && value != "default"
		}
	}
	return "", false
}

// isZeroDuration reports whether a timeout value (0, '0', '0s', '0 ms')
// means no limit.
func isZeroDuration(v string) bool {
	num := strings.TrimRightFunc(strings.TrimSpace(v), func(r rune) bool { return unicode.IsLetter(r) || unicode.IsSpace(r) })
	f, err := strconv.ParseFloat(num, 64)
	return err == nil && f == 0
}

func checkLockTimeout(fc *fileCheck) []issue {
	first, lock, _ := fc.timeoutsAtFirstStatement()
	switch {
	case first == nil:
		return nil
	case !lock.set:
		return []issue{stmtIssue(first, "no SET lock_timeout before the first statement: a statement waiting for its lock queues every query on the table behind it")}
	case lock.zero:
		return []issue{stmtIssue(first, "lock_timeout is 0, which waits for a lock forever")}
	case lock.local && fc.file.parsed.NoTransaction():
		return []issue{stmtIssue(first, "SET LOCAL lock_timeout has no effect in a no-transaction file, where every statement is a transaction of its own: use SET")}
	}
	return nil
}

func checkStatementTimeout(fc *fileCheck) []issue {
	first, _, statement := fc.timeoutsAtFirstStatement()
	concurrent := slices.ContainsFunc(fc.file.stmts, func(s *stmt) bool { return s.noTx })
	switch {
	case first == nil:
		return nil
	case !statement.set:
		return []issue{stmtIssue(first, "no SET statement_timeout before the first statement")}
	case statement.zero && !concurrent:
		return []issue{stmtIssue(first, "statement_timeout is 0 (no limit), which only a CONCURRENTLY file may use")}
	case statement.local && fc.file.parsed.NoTransaction():
		return []issue{stmtIssue(first, "SET LOCAL statement_timeout has no effect in a no-transaction file, where every statement is a transaction of its own: use SET")}
	}
	return nil
}

// --- ZD011 -----------------------------------------------------------------

func checkUnboundedDML(fc *fileCheck) []issue {
	var out []issue
	for _, s := range fc.file.stmts {
		switch s.fields[0] {
		case "delete", "update", "with":
		default:
			continue
		}
		// Parenthesized parts (CTEs, subqueries) are left out: the WHERE
		// must bound the main statement.
		top := topLevel(s.fields)
		i := slices.IndexFunc(top, func(w string) bool {
			return w == "delete" || w == "update" || w == "insert" || w == "select" || w == "merge"
		})
		if i < 0 || (top[i] != "delete" && top[i] != "update") {
			continue
		}
		if !slices.Contains(top[i:], "where") {
			out = append(out, stmtIssue(s, "%s without WHERE touches every row of the table in one transaction", strings.ToUpper(top[i])))
		}
	}
	return out
}

// --- ZD012 -----------------------------------------------------------------

func checkTypes(fc *fileCheck) []issue {
	var out []issue
	for _, s := range fc.file.stmts {
		if s.createTable != "" {
			for _, col := range columnDefs(s) {
				if problem := typeProblem(col.typ, col.key); problem != "" {
					out = append(out, stmtIssue(s, "column %s: %s", col.name, problem))
				}
			}
		}
		if s.alter == nil {
			continue
		}
		for _, a := range s.alter.actions {
			if col, rest, ok := columnAction(a, "add"); ok {
				top := topLevel(rest)
				key := isKeyName(col) || slices.Contains(top, "primary") || slices.Contains(top, "references")
				if problem := typeProblem(typeFields(rest), key); problem != "" {
					out = append(out, stmtIssue(s, "column %s: %s", col, problem))
				}
			}
			if col, rest, ok := columnAction(a, "alter"); ok {
				c := cursor{f: rest}
				c.accept("set", "data")
				if c.accept("type") {
					if problem := typeProblem(typeFields(c.rest()), isKeyName(col)); problem != "" {
						out = append(out, stmtIssue(s, "column %s: %s", col, problem))
					}
				}
			}
		}
	}
	return out
}

type columnDef struct {
	name string
	typ  []string
	key  bool
}

// columnDefs returns the columns a CREATE TABLE statement defines, with
// whether each is a key (the primary key, a foreign key, or named id or
// *_id).
func columnDefs(s *stmt) []columnDef {
	start := slices.Index(s.fields, s.createTable)
	if start < 0 || at(s.fields, start+1) != "(" {
		return nil
	}
	body := s.fields[start+1:]
	end := closingParen(body)
	if end < 0 {
		return nil
	}
	var cols []columnDef
	var keys []string
	for _, elem := range splitTop(body[1:end], ",") {
		switch elem[0] {
		case "constraint", "primary", "unique", "check", "foreign", "exclude", "like":
			for _, kw := range []string{"primary", "foreign"} {
				if i := slices.Index(elem, kw); i >= 0 && at(elem, i+1) == "key" && at(elem, i+2) == "(" {
					list := elem[i+2:]
					for _, w := range list[1:max(closingParen(list), 1)] {
						if w != "," {
							keys = append(keys, sqlfile.Ident(w))
						}
					}
				}
			}
			continue
		}
		top := topLevel(elem[1:])
		name := sqlfile.Ident(elem[0])
		cols = append(cols, columnDef{
			name: name,
			typ:  typeFields(elem[1:]),
			key:  isKeyName(name) || slices.Contains(top, "primary") || slices.Contains(top, "references"),
		})
	}
	for i := range cols {
		if slices.Contains(keys, cols[i].name) {
			cols[i].key = true
		}
	}
	return cols
}

// typeFields returns the leading fields of a column definition that spell
// its type.
func typeFields(def []string) []string {
	for i, w := range def {
		switch w {
		case "constraint", "not", "null", "default", "primary", "unique", "check", "references",
			"generated", "collate", "compression", "storage":
			return def[:i]
		}
	}
	return def
}

func isKeyName(column string) bool {
	return column == "id" || strings.HasSuffix(column, "_id")
}

// typeProblem says what is wrong with a column type, empty when nothing is.
func typeProblem(typ []string, key bool) string {
	if len(typ) == 0 {
		return ""
	}
	base := typ[0]
	if i := strings.LastIndexByte(base, '.'); i >= 0 {
		base = base[i+1:]
	}
	hasLength := at(typ, 1) == "("
	switch {
	case base == "timestamp" && !containsSeq(typ, "with", "time", "zone"):
		return "timestamp without time zone; use timestamptz"
	case base == "serial" || base == "serial4" || base == "smallserial" || base == "serial2":
		return base + " is a 4-byte (or 2-byte) key; use bigint GENERATED ALWAYS AS IDENTITY, or uuid"
	case key && (base == "int" || base == "integer" || base == "int4" || base == "smallint" || base == "int2"):
		return base + " key; use bigint or uuid"
	case base == "varchar" && hasLength,
		base == "character" && at(typ, 1) == "varying" && at(typ, 2) == "(":
		return "varchar(n); use text (with a CHECK on its length where that matters)"
	case base == "char" || base == "bpchar" || base == "character" && at(typ, 1) != "varying":
		return "char(n) pads with blanks; use text"
	}
	return ""
}

// at returns f[i], or "" past the end.
func at(f []string, i int) string {
	if i < 0 || i >= len(f) {
		return ""
	}
	return f[i]
}

// sourceLine returns line n of src, trimmed.
func sourceLine(src string, n int) string {
	lines := strings.Split(src, "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return strings.TrimSpace(lines[n-1])
}
