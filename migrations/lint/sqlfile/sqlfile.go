// Package sqlfile reads a migration file the way psql reads a script: it
// splits the text into statements at the semicolons that end them (not those
// inside string literals, quoted identifiers, dollar-quoted bodies, comments,
// parentheses or a BEGIN ATOMIC function body), keeps the line each statement
// starts on, and reads the herald: annotations in its comments.
//
// Both the migration runner (which runs a `-- herald:no-transaction` file one
// statement at a time) and the zero-downtime linter read files through this
// package, so that they agree on where a statement ends.
package sqlfile

import (
	"fmt"
	"strings"
)

// TokenKind is the lexical class of a Token.
type TokenKind int

// The token kinds.
const (
	// Word is a keyword or an unquoted identifier.
	Word TokenKind = iota
	// QuotedIdent is a double-quoted identifier ("Name", U&"...").
	QuotedIdent
	// String is a string constant: '...', E'...', B'...', X'...', N'...', U&'...'.
	String
	// DollarString is a dollar-quoted string constant: $$...$$ or $tag$...$tag$.
	DollarString
	// Number is a numeric constant.
	Number
	// Param is a positional parameter such as $1.
	Param
	// Punct is an operator or a punctuation mark: ( ) , . :: = + ...
	Punct
)

// Token is one lexical element of a statement.
type Token struct {
	// Kind is the lexical class.
	Kind TokenKind
	// Text is the token as written in the file.
	Text string
	// Value is what the token means: a Word in lower case, the name inside a
	// QuotedIdent, the contents of a String or DollarString; Text otherwise.
	Value string
	// Line is the 1-based line the token starts on.
	Line int
}

// Statement is one SQL statement of a file.
type Statement struct {
	// Line is the 1-based line of the statement's first token.
	Line int
	// EndLine is the line of the semicolon that ends the statement, or of its
	// last token when the file ends without one.
	EndLine int
	// Text is the statement as written, from its first token to its last,
	// without the semicolon; comments inside it are kept.
	Text string
	// Tokens are the statement's tokens; comments are not tokens.
	Tokens []Token
	// Norm is the statement normalized for matching: tokens separated by one
	// space (none around "."), words in lower case, every string constant
	// written '' and every dollar-quoted body $$ (so that their contents can
	// never match a pattern), and quoted identifiers kept in double quotes
	// with every byte other than [A-Za-z0-9_$] written %XX (so that a quoted
	// name never holds a space, a comma or a parenthesis).
	Norm string
}

// FirstLine is the first line of the statement's text.
func (s Statement) FirstLine() string {
	line, _, _ := strings.Cut(s.Text, "\n")
	return strings.TrimSpace(line)
}

// Comment is one comment of a file.
type Comment struct {
	// Line is the 1-based line the comment starts on.
	Line int
	// Text is the comment without its markers (-- or /* */), trimmed.
	Text string
	// Block is true for a /* */ comment, false for a -- comment.
	Block bool
	// OwnLine is true when nothing but white space precedes the comment on
	// its line.
	OwnLine bool
}

// File is a parsed migration file.
type File struct {
	// Statements are the file's statements in order; empty statements (a
	// lone semicolon) are left out.
	Statements []Statement
	// Comments are every comment of the file in order, those inside
	// statements included.
	Comments []Comment
}

// SyntaxError is a file that cannot be split: a quote, a comment or a
// parenthesis left open at the end of the file.
type SyntaxError struct {
	// Line is the 1-based line where the unclosed construct starts.
	Line int
	// Msg says what is left open.
	Msg string
}

// Error implements error.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// Parse splits src into statements and comments.
func Parse(src string) (*File, error) {
	lx := lexer{src: strings.TrimPrefix(src, "\uFEFF"), line: 1}
	f := &File{}
	var cur stmtBuilder
	for {
		item, err := lx.next()
		if err != nil {
			return nil, err
		}
		switch item.kind {
		case itemEOF:
			if cur.parenDepth > 0 {
				return nil, &SyntaxError{Line: cur.parenLine, Msg: "parenthesis opened here is never closed"}
			}
			if st, ok := cur.finish(lx.src, 0); ok {
				f.Statements = append(f.Statements, st)
			}
			return f, nil
		case itemComment:
			f.Comments = append(f.Comments, item.comment)
		case itemToken:
			if item.tok.Kind == Punct && item.tok.Text == ";" && cur.parenDepth == 0 && cur.beginDepth == 0 {
				if st, ok := cur.finish(lx.src, item.tok.Line); ok {
					f.Statements = append(f.Statements, st)
				}
				cur = stmtBuilder{}
				continue
			}
			cur.add(item.tok, item.start, item.end)
		}
	}
}

// stmtBuilder collects the tokens of the statement being read. It tracks
// parentheses and, in CREATE [OR REPLACE] FUNCTION|PROCEDURE statements,
// BEGIN ... END nesting, so that semicolons inside either do not end the
// statement: the same rules psql applies.
type stmtBuilder struct {
	tokens     []Token
	start, end int
	parenDepth int
	parenLine  int
	beginDepth int
	// words are the first words of the statement, for the function check.
	words []string
}

func (b *stmtBuilder) add(tok Token, start, end int) {
	if len(b.tokens) == 0 {
		b.start = start
	}
	b.end = end
	b.tokens = append(b.tokens, tok)

	switch {
	case tok.Kind == Punct && tok.Text == "(":
		if b.parenDepth == 0 {
			b.parenLine = tok.Line
		}
		b.parenDepth++
	case tok.Kind == Punct && tok.Text == ")":
		if b.parenDepth > 0 {
			b.parenDepth--
		}
	case tok.Kind == Word:
		if len(b.words) < 4 {
			b.words = append(b.words, tok.Value)
		}
		if !b.isRoutine() || b.parenDepth > 0 {
			return
		}
		switch tok.Value {
		case "begin":
			b.beginDepth++
		case "case":
			// CASE ends with END too; it matters only inside a BEGIN.
			if b.beginDepth > 0 {
				b.beginDepth++
			}
		case "end":
			if b.beginDepth > 0 {
				b.beginDepth--
			}
		}
	}
}

// isRoutine reports whether the statement so far reads CREATE [OR REPLACE]
// FUNCTION|PROCEDURE, whose SQL-standard body (BEGIN ATOMIC ... END) may hold
// semicolons.
func (b *stmtBuilder) isRoutine() bool {
	w := b.words
	isKind := func(s string) bool { return s == "function" || s == "procedure" }
	switch {
	case len(w) >= 2 && w[0] == "create" && isKind(w[1]):
		return true
	case len(w) >= 4 && w[0] == "create" && w[1] == "or" && w[2] == "replace" && isKind(w[3]):
		return true
	}
	return false
}

// finish returns the statement read so far, ended by a semicolon on endLine,
// or by the end of the file when endLine is 0.
func (b *stmtBuilder) finish(src string, endLine int) (Statement, bool) {
	if len(b.tokens) == 0 {
		return Statement{}, false
	}
	if endLine == 0 {
		last := b.tokens[len(b.tokens)-1]
		endLine = last.Line + strings.Count(last.Text, "\n")
	}
	return Statement{
		Line:    b.tokens[0].Line,
		EndLine: endLine,
		Text:    src[b.start:b.end],
		Tokens:  b.tokens,
		Norm:    normalize(b.tokens),
	}, true
}

// normalize renders tokens as described at Statement.Norm.
func normalize(tokens []Token) string {
	var sb strings.Builder
	glue := true // no space before the next token
	for _, t := range tokens {
		isDot := t.Kind == Punct && t.Text == "."
		if !glue && !isDot {
			sb.WriteByte(' ')
		}
		glue = isDot
		switch t.Kind {
		case Word:
			sb.WriteString(t.Value)
		case QuotedIdent:
			sb.WriteString(CanonicalQuoted(t.Value))
		case String:
			sb.WriteString("''")
		case DollarString:
			sb.WriteString("$$")
		default:
			sb.WriteString(t.Text)
		}
	}
	return sb.String()
}

// CanonicalQuoted writes name as a quoted identifier the way Statement.Norm
// does: in double quotes, every byte other than [A-Za-z0-9_$] as %XX.
func CanonicalQuoted(name string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isPlainByte(c) {
			sb.WriteByte(c)
			continue
		}
		fmt.Fprintf(&sb, "%%%02X", c)
	}
	sb.WriteByte('"')
	return sb.String()
}

// Ident turns one name as written in Statement.Norm (a word or a canonical
// quoted identifier, not a qualified name) back into the name PostgreSQL
// sees: a word as is (Norm has it in lower case already), a quoted name
// decoded.
func Ident(norm string) string {
	if len(norm) < 2 || norm[0] != '"' || norm[len(norm)-1] != '"' {
		return norm
	}
	inner := norm[1 : len(norm)-1]
	var sb strings.Builder
	for i := 0; i < len(inner); i++ {
		if inner[i] == '%' && i+2 < len(inner) {
			var c byte
			if _, err := fmt.Sscanf(inner[i+1:i+3], "%02X", &c); err == nil {
				sb.WriteByte(c)
				i += 2
				continue
			}
		}
		sb.WriteByte(inner[i])
	}
	return sb.String()
}

func isPlainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$'
}
