package envdoc

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Entry is one variable documented in an example file.
type Entry struct {
	// Name is the variable.
	Name string
	// Value is the example value (may be empty).
	Value string
	// Commented is true for "# NAME=value": optional, or shown with its default.
	Commented bool
	// Description is the comment on the line just above, without "# "; empty when missing.
	Description string
	// Line is the entry's line number, from 1.
	Line int
}

// ParseExample reads an example environment file: lines "NAME=value" and "# NAME=value",
// each preceded by a one-line "# description" comment. Other comment lines and blank lines are
// free text.
func ParseExample(r io.Reader) ([]Entry, error) {
	var (
		entries []Entry
		prev    string // the previous line when it was a description comment
		line    int
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if e, ok := parseEntry(text); ok {
			e.Line = line
			e.Description = prev
			entries = append(entries, e)
			prev = ""
			continue
		}
		prev = ""
		if desc, ok := strings.CutPrefix(text, "#"); ok {
			prev = strings.TrimSpace(desc)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read example file: %w", err)
	}
	return entries, nil
}

// parseEntry recognises "NAME=value" and "# NAME=value".
func parseEntry(text string) (Entry, bool) {
	var e Entry
	if rest, ok := strings.CutPrefix(text, "#"); ok {
		e.Commented = true
		text = strings.TrimSpace(rest)
	}
	name, value, ok := strings.Cut(text, "=")
	if !ok || !isVarName(name) {
		return Entry{}, false
	}
	e.Name = name
	e.Value = value
	return e, true
}

// isVarName accepts upper-case environment variable names: A-Z, 0-9 and _, not starting with
// a digit.
func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Problems compares what the code reads with what the example documents and returns one line
// per problem, sorted by kind: undocumented variables, documented variables nothing reads,
// entries without a description, variables set more than once, and reads whose name could not
// be worked out.
func Problems(reads Reads, entries []Entry) []string {
	var out []string
	documented := map[string]bool{}
	active := map[string]int{}
	for _, e := range entries {
		documented[e.Name] = true
		if !e.Commented {
			active[e.Name]++
		}
	}
	for _, name := range reads.Names() {
		if !documented[name] {
			out = append(out, fmt.Sprintf("undocumented: %s (read at %s)", name, reads.Vars[name][0].Pos))
		}
	}
	reported := map[string]bool{}
	for _, e := range entries {
		if _, ok := reads.Vars[e.Name]; !ok && !reported[e.Name] {
			reported[e.Name] = true
			out = append(out, fmt.Sprintf("documented but never read: %s (line %d)", e.Name, e.Line))
		}
	}
	for _, e := range entries {
		if e.Description == "" {
			out = append(out, fmt.Sprintf("no description: %s (line %d needs a \"# ...\" comment line just above)", e.Name, e.Line))
		}
	}
	for _, e := range entries {
		if !e.Commented && active[e.Name] > 1 {
			active[e.Name] = 0
			out = append(out, fmt.Sprintf("set more than once: %s (line %d); comment out all but one", e.Name, e.Line))
		}
	}
	for _, u := range reads.Unresolved {
		out = append(out, "unresolved: "+u)
	}
	return out
}
