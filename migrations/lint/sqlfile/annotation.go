package sqlfile

import "strings"

// AnnotationPrefix starts every annotation: a -- comment whose text begins
// with it, e.g. `-- herald:no-transaction`.
const AnnotationPrefix = "herald:"

// The directives an annotation may carry.
const (
	// DirectiveAllow, directly above a statement, lets that statement break
	// the rules it names: `-- herald:allow ZD002 reason: <why>`.
	DirectiveAllow = "allow"
	// DirectiveContract, in the header, marks the file as the contract step
	// of an expand/contract change: `-- herald:contract flag=<flag_name>`.
	DirectiveContract = "contract"
	// DirectiveNoTransaction, in the header, makes the runner run the file's
	// statements one at a time, each in its own transaction, instead of the
	// whole file as one: `-- herald:no-transaction`.
	DirectiveNoTransaction = "no-transaction"
)

// Annotation is one herald: directive, read from a -- comment.
type Annotation struct {
	// Line is the 1-based line of the comment.
	Line int
	// Directive is the word after the prefix: allow, contract, ...; any
	// other word is kept so that a linter can report it.
	Directive string
	// Args is the rest of the comment after the directive, trimmed.
	Args string
	// Header is true when the comment comes before the file's first
	// statement.
	Header bool
	// OwnLine is true when the comment is alone on its line.
	OwnLine bool
}

// Annotations returns every annotation of the file in order.
func (f *File) Annotations() []Annotation {
	first := -1
	if len(f.Statements) > 0 {
		first = f.Statements[0].Line
	}
	var out []Annotation
	for _, c := range f.Comments {
		a, ok := annotation(c)
		if !ok {
			continue
		}
		a.Header = first < 0 || c.Line < first
		out = append(out, a)
	}
	return out
}

// Above returns the annotations directly above statement i: those in the
// unbroken run of -- comment lines that ends on the line just before the
// statement's first line. A blank line, a block comment or the end of the
// previous statement ends the run.
func (f *File) Above(i int) []Annotation {
	st := f.Statements[i]
	prevEnd := 0
	if i > 0 {
		prevEnd = f.Statements[i-1].EndLine
	}
	byLine := make(map[int]Comment)
	for _, c := range f.Comments {
		if !c.Block && c.OwnLine && c.Line > prevEnd && c.Line < st.Line {
			byLine[c.Line] = c
		}
	}
	var out []Annotation
	for line := st.Line - 1; line > prevEnd; line-- {
		c, ok := byLine[line]
		if !ok {
			break
		}
		if a, ok := annotation(c); ok {
			a.Header = i == 0
			out = append(out, a)
		}
	}
	// Collected bottom-up; return them in file order.
	for l, r := 0, len(out)-1; l < r; l, r = l+1, r-1 {
		out[l], out[r] = out[r], out[l]
	}
	return out
}

// NoTransaction reports whether the file's header holds
// `-- herald:no-transaction`.
func (f *File) NoTransaction() bool {
	for _, a := range f.Annotations() {
		if a.Header && a.Directive == DirectiveNoTransaction {
			return true
		}
	}
	return false
}

// NoTransaction reports whether src's header (the comments before its first
// statement) holds `-- herald:no-transaction`. It reads no further than the
// first statement, so it answers even for a file that Parse would refuse.
func NoTransaction(src string) bool {
	lx := lexer{src: strings.TrimPrefix(src, "\uFEFF"), line: 1}
	for {
		it, err := lx.next()
		if err != nil || it.kind != itemComment {
			return false
		}
		if a, ok := annotation(it.comment); ok && a.Directive == DirectiveNoTransaction {
			return true
		}
	}
}

func annotation(c Comment) (Annotation, bool) {
	if c.Block {
		return Annotation{}, false
	}
	rest, ok := strings.CutPrefix(c.Text, AnnotationPrefix)
	if !ok {
		return Annotation{}, false
	}
	rest = strings.TrimSpace(rest)
	directive, args := rest, ""
	if i := strings.IndexAny(rest, " \t"); i >= 0 {
		directive, args = rest[:i], rest[i+1:]
	}
	return Annotation{
		Line:      c.Line,
		Directive: directive,
		Args:      strings.TrimSpace(args),
		OwnLine:   c.OwnLine,
	}, true
}
