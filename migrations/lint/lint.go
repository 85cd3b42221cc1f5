// Package lint is the zero-downtime migration linter behind `migrate lint`.
// Every migration must stay compatible with the code of the release before
// it (N-1) and must not hold locks that stall traffic, so the linter refuses
// drops outside an expand/contract change, renames, type changes, lock-heavy
// index and constraint builds, migrations without lock and statement
// timeouts, and unbatched data changes. The rules live in one table (see
// Rules); docs/migrations.md explains each with its fix.
//
// A statement may break a rule when a comment line directly above it says
// why, visible in review: `-- herald:allow ZD002 reason: <why>`.
package lint

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/heraldmail/herald/migrations/lint/sqlfile"
)

// Severity tells a rule that guards against an outage (Error) from one that
// guards a convention (Warning). Both fail the lint unless allowed.
type Severity int

// The severities.
const (
	// Error findings would break N-1 code or stall traffic.
	Error Severity = iota
	// Warning findings break a schema convention.
	Warning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Finding is one broken rule.
type Finding struct {
	// Rule is the rule id, e.g. ZD004.
	Rule string
	// Severity is the rule's severity.
	Severity Severity
	// File is the migration file as named to the linter.
	File string
	// Line is the 1-based line of the statement (of the annotation for
	// annotation findings).
	Line int
	// Statement is the first line of the statement (or the annotation).
	Statement string
	// Message says what is wrong.
	Message string
	// Hint says how to fix it.
	Hint string
}

// String formats the finding for a terminal: location, rule and message on
// the first line, then the statement and the hint, indented.
func (f Finding) String() string {
	return fmt.Sprintf("%s:%d: %s %s: %s\n    %s\n    fix: %s", f.File, f.Line, f.Rule, f.Severity, f.Message, f.Statement, f.Hint)
}

// Options configures a Linter.
type Options struct {
	// CodeRoots are the directories whose Go files (tests included) are
	// searched for references to the feature flag named by a contract step
	// (`-- herald:contract flag=<flag>`): the drop is accepted only when no
	// Go file references the flag any more. Under each root, the migrations
	// directory (this module: the linter, its fixtures, the runner) and
	// hidden, vendor and node_modules directories are not searched. Linting
	// a contract step without any root is an error.
	CodeRoots []string
}

// Linter checks migration files against the rules.
type Linter struct {
	opts  Options
	rules []rule
}

// New returns a Linter.
func New(opts Options) *Linter {
	return &Linter{opts: opts, rules: builtinRules()}
}

// LintFS lints every .sql file of fsys (the embedded migrations, say), named
// by their paths in fsys. Files of one directory form one schema's history,
// in the order of their version prefixes.
func (l *Linter) LintFS(fsys fs.FS) ([]Finding, error) {
	set := newFileSet()
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isSQL(name) {
			return nil
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		set.add(path.Dir(name), name, path.Base(name), string(body), true)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return l.lint(set)
}

// LintPaths lints the .sql files named by paths on disk: a directory stands
// for every .sql file under it. A file is linted with the files before it in
// its directory as its schema's history, so that, for example, a SET NOT NULL
// sees the CHECK constraint validated by an earlier file.
func (l *Linter) LintPaths(paths ...string) ([]Finding, error) {
	set := newFileSet()
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("lint %s: %w", p, err)
		}
		if info.IsDir() {
			err = fs.WalkDir(os.DirFS(p), ".", func(name string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() && name != "." && strings.HasPrefix(d.Name(), ".") {
					return fs.SkipDir
				}
				if d.IsDir() || !isSQL(name) {
					return nil
				}
				return set.addDisk(filepath.Join(p, filepath.FromSlash(path.Dir(name))), d.Name(), true)
			})
		} else {
			err = set.addDisk(filepath.Dir(p), filepath.Base(p), true)
		}
		if err != nil {
			return nil, fmt.Errorf("lint %s: %w", p, err)
		}
	}
	if err := set.addSiblings(); err != nil {
		return nil, err
	}
	return l.lint(set)
}

func (l *Linter) lint(set *fileSet) ([]Finding, error) {
	refs, err := l.flagReferences(set)
	if err != nil {
		return nil, err
	}
	var findings []Finding
	for _, dir := range set.sortedDirs() {
		hist := &history{}
		for _, f := range set.dirs[dir] {
			if f.selected {
				findings = append(findings, l.lintFile(f, hist, refs)...)
			}
			if f.up && f.parsed != nil {
				hist.record(f)
			}
		}
	}
	slices.SortStableFunc(findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Rule, b.Rule))
	})
	return findings, nil
}

// flagReferences searches the code roots for the flags of the selected
// contract steps.
func (l *Linter) flagReferences(set *fileSet) (map[string][]codeRef, error) {
	var flags []string
	for _, files := range set.dirs {
		for _, f := range files {
			if flag := f.contractFlag(); f.selected && f.up && flag != "" && !slices.Contains(flags, flag) {
				flags = append(flags, flag)
			}
		}
	}
	if len(flags) == 0 {
		return nil, nil
	}
	if len(l.opts.CodeRoots) == 0 {
		return nil, errors.New("a contract step names a flag, but no code root is given to search for it")
	}
	return findReferences(l.opts.CodeRoots, flags)
}

// RepoRoot returns the repository root above dir: the nearest directory,
// dir included, that holds go.work.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.work in any parent directory")
		}
		dir = parent
	}
}

// migrationFile is one file to lint, or one read only as history.
type migrationFile struct {
	// name is the file as shown in findings.
	name string
	// base is the file name without its directory.
	base    string
	version uint64
	// up is false for .down.sql files; any other .sql file counts as up.
	up       bool
	selected bool
	src      string
	parsed   *sqlfile.File
	parseErr *sqlfile.SyntaxError
	stmts    []*stmt
}

func newMigrationFile(name, base, src string, selected bool) *migrationFile {
	f := &migrationFile{
		name:     name,
		base:     base,
		up:       !strings.HasSuffix(base, ".down.sql"),
		selected: selected,
		src:      src,
	}
	digits := base[:len(base)-len(strings.TrimLeft(base, "0123456789"))]
	if digits != "" {
		f.version, _ = strconv.ParseUint(digits, 10, 64)
	}
	parsed, err := sqlfile.Parse(src)
	if err != nil {
		syntaxErr := &sqlfile.SyntaxError{Line: 1, Msg: err.Error()}
		errors.As(err, &syntaxErr)
		f.parseErr = syntaxErr
		return f
	}
	f.parsed = parsed
	for i, st := range parsed.Statements {
		f.stmts = append(f.stmts, analyze(st, i))
	}
	return f
}

// contractFlag is the flag named by the file's contract annotation, empty
// when there is none or it names no valid flag.
func (f *migrationFile) contractFlag() string {
	if f.parsed == nil {
		return ""
	}
	for _, a := range f.parsed.Annotations() {
		if a.Header && a.Directive == sqlfile.DirectiveContract {
			flag, _ := parseContract(a.Args)
			return flag
		}
	}
	return ""
}

// fileSet holds the files to lint, grouped by directory.
type fileSet struct {
	dirs map[string][]*migrationFile
	// disk are the directories on disk whose other files are read as
	// history.
	disk map[string]bool
}

func newFileSet() *fileSet {
	return &fileSet{dirs: make(map[string][]*migrationFile), disk: make(map[string]bool)}
}

func (s *fileSet) add(dir, name, base, src string, selected bool) {
	for _, f := range s.dirs[dir] {
		if f.name == name {
			f.selected = f.selected || selected
			return
		}
	}
	f := newMigrationFile(name, base, src, selected)
	s.dirs[dir] = append(s.dirs[dir], f)
	slices.SortFunc(s.dirs[dir], func(a, b *migrationFile) int {
		return cmp.Or(cmp.Compare(a.version, b.version), cmp.Compare(a.base, b.base))
	})
}

func (s *fileSet) addDisk(dir, base string, selected bool) error {
	dir = filepath.Clean(dir)
	s.disk[dir] = true
	name := filepath.Join(dir, base)
	for _, f := range s.dirs[dir] {
		if f.name == name {
			f.selected = f.selected || selected
			return nil
		}
	}
	body, err := fs.ReadFile(os.DirFS(dir), base)
	if err != nil {
		return err
	}
	s.add(dir, name, base, string(body), selected)
	return nil
}

// addSiblings reads, as history, the .sql files of every directory on disk
// that holds a file to lint.
func (s *fileSet) addSiblings() error {
	for dir := range s.disk {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("read %s: %w", dir, err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && isSQL(e.Name()) {
				if err := s.addDisk(dir, e.Name(), false); err != nil {
					return fmt.Errorf("read %s: %w", filepath.Join(dir, e.Name()), err)
				}
			}
		}
	}
	return nil
}

func (s *fileSet) sortedDirs() []string {
	dirs := make([]string, 0, len(s.dirs))
	for d := range s.dirs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs
}

func isSQL(name string) bool {
	return strings.HasSuffix(name, ".sql")
}

// history is what the earlier up migrations of a schema left behind, as far
// as the rules care.
type history struct {
	// notNullChecks are CHECK (col IS NOT NULL) constraints.
	notNullChecks []notNullCheck
	// concurrentIndexes are the names of indexes built CONCURRENTLY.
	concurrentIndexes []string
}

type notNullCheck struct {
	table, column, name string
	validated           bool
}

func (h *history) record(f *migrationFile) {
	for _, s := range f.stmts {
		if s.idx != nil && s.idx.create && s.idx.concurrently && len(s.idx.names) == 1 {
			h.concurrentIndexes = append(h.concurrentIndexes, s.idx.names[0])
		}
		if s.alter == nil {
			continue
		}
		for _, a := range s.alter.actions {
			if ca, ok := parseConstraintAction(a); ok && ca.kind == "check" && ca.name != "" {
				if col, ok := notNullColumn(ca.body); ok {
					h.notNullChecks = append(h.notNullChecks, notNullCheck{
						table: s.alter.table, column: col, name: ca.name, validated: !ca.notValid,
					})
				}
			}
			c := cursor{f: a}
			switch {
			case c.accept("validate", "constraint"):
				name := c.take()
				for i, chk := range h.notNullChecks {
					if sameRel(chk.table, s.alter.table) && sqlfile.Ident(chk.name) == sqlfile.Ident(name) {
						h.notNullChecks[i].validated = true
					}
				}
			case c.accept("drop", "constraint"):
				c.accept("if", "exists")
				name := c.take()
				h.notNullChecks = slices.DeleteFunc(h.notNullChecks, func(chk notNullCheck) bool {
					return sameRel(chk.table, s.alter.table) && sqlfile.Ident(chk.name) == sqlfile.Ident(name)
				})
			}
		}
	}
}

// validatedNotNull reports whether a valid CHECK (column IS NOT NULL) on
// table exists.
func (h *history) validatedNotNull(table, column string) bool {
	for _, chk := range h.notNullChecks {
		if chk.validated && chk.column == column && sameRel(chk.table, table) {
			return true
		}
	}
	return false
}

// builtConcurrently reports whether index was built CONCURRENTLY.
func (h *history) builtConcurrently(index string) bool {
	for _, name := range h.concurrentIndexes {
		if sameRel(name, index) {
			return true
		}
	}
	return false
}
