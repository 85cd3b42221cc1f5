package sqlfile

import "strings"

type itemKind int

const (
	itemEOF itemKind = iota
	itemToken
	itemComment
)

// item is what the lexer reads next: a token (with its byte offsets in the
// source), a comment, or the end of the file.
type item struct {
	kind       itemKind
	tok        Token
	comment    Comment
	start, end int
}

// lexer reads PostgreSQL's lexical structure, with standard_conforming_strings
// on (the default since PostgreSQL 9.1): backslashes are plain characters
// except in E'...' strings.
type lexer struct {
	src  string
	pos  int
	line int
	// lineHasContent is true once anything but white space was read on the
	// current line; it tells a comment on its own line from a trailing one.
	lineHasContent bool
}

func (lx *lexer) next() (item, error) {
	lx.skipSpace()
	if lx.pos >= len(lx.src) {
		return item{kind: itemEOF}, nil
	}
	start, line := lx.pos, lx.line
	ownLine := !lx.lineHasContent
	lx.lineHasContent = true
	src := lx.src
	c := src[lx.pos]

	switch {
	case strings.HasPrefix(src[lx.pos:], "--"):
		end := strings.IndexByte(src[lx.pos:], '\n')
		if end < 0 {
			end = len(src) - lx.pos
		}
		text := src[lx.pos+2 : lx.pos+end]
		lx.pos += end
		return item{kind: itemComment, comment: Comment{Line: line, Text: strings.TrimSpace(text), OwnLine: ownLine}}, nil

	case strings.HasPrefix(src[lx.pos:], "/*"):
		text, err := lx.blockComment()
		if err != nil {
			return item{}, err
		}
		return item{kind: itemComment, comment: Comment{Line: line, Text: strings.TrimSpace(text), Block: true, OwnLine: ownLine}}, nil

	case c == '\'':
		value, err := lx.quoted('\'', false)
		if err != nil {
			return item{}, err
		}
		return lx.token(String, start, line, value), nil

	case c == '"':
		value, err := lx.quoted('"', false)
		if err != nil {
			return item{}, err
		}
		return lx.token(QuotedIdent, start, line, value), nil

	case c == '$':
		return lx.dollar(start, line)

	case isDigit(c) || c == '.' && lx.pos+1 < len(src) && isDigit(src[lx.pos+1]):
		lx.number()
		return lx.token(Number, start, line, src[start:lx.pos]), nil

	case isIdentStart(c):
		return lx.word(start, line)

	case strings.HasPrefix(src[lx.pos:], "::"):
		lx.pos += 2
		return lx.token(Punct, start, line, "::"), nil

	case isOperatorChar(c):
		lx.pos++
		for lx.pos < len(src) && isOperatorChar(src[lx.pos]) &&
			!strings.HasPrefix(src[lx.pos:], "--") && !strings.HasPrefix(src[lx.pos:], "/*") {
			lx.pos++
		}
		return lx.token(Punct, start, line, src[start:lx.pos]), nil

	default:
		lx.pos++
		return lx.token(Punct, start, line, src[start:lx.pos]), nil
	}
}

func (lx *lexer) token(kind TokenKind, start, line int, value string) item {
	if kind == Word {
		value = strings.ToLower(value)
	}
	return item{
		kind:  itemToken,
		tok:   Token{Kind: kind, Text: lx.src[start:lx.pos], Value: value, Line: line},
		start: start,
		end:   lx.pos,
	}
}

func (lx *lexer) skipSpace() {
	for lx.pos < len(lx.src) {
		switch lx.src[lx.pos] {
		case '\n':
			lx.line++
			lx.lineHasContent = false
		case ' ', '\t', '\r', '\f', '\v':
		default:
			return
		}
		lx.pos++
	}
}

// advance moves past n bytes, counting the newlines among them.
func (lx *lexer) advance(n int) {
	lx.line += strings.Count(lx.src[lx.pos:lx.pos+n], "\n")
	lx.pos += n
}

// blockComment reads a /* */ comment; they nest in PostgreSQL.
func (lx *lexer) blockComment() (string, error) {
	startLine := lx.line
	body := lx.pos + 2
	i, depth := body, 1
	for i < len(lx.src) {
		switch {
		case strings.HasPrefix(lx.src[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(lx.src[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				text := lx.src[body : i-2]
				lx.advance(i - lx.pos)
				return text, nil
			}
		default:
			i++
		}
	}
	return "", &SyntaxError{Line: startLine, Msg: "block comment opened here is never closed"}
}

// quoted reads a string or identifier quoted by q, where a doubled q stands
// for one; with backslashes (E'...' strings) a backslash escapes the next
// character. It returns the contents.
func (lx *lexer) quoted(q byte, backslashes bool) (string, error) {
	startLine := lx.line
	var sb strings.Builder
	i := lx.pos + 1
	for i < len(lx.src) {
		c := lx.src[i]
		switch {
		case backslashes && c == '\\' && i+1 < len(lx.src):
			sb.WriteByte(lx.src[i+1])
			i += 2
		case c == q && i+1 < len(lx.src) && lx.src[i+1] == q:
			sb.WriteByte(q)
			i += 2
		case c == q:
			lx.advance(i + 1 - lx.pos)
			return sb.String(), nil
		default:
			sb.WriteByte(c)
			i++
		}
	}
	what := "string constant"
	if q == '"' {
		what = "quoted identifier"
	}
	return "", &SyntaxError{Line: startLine, Msg: what + " opened here is never closed"}
}

// dollar reads what starts with $: a positional parameter ($1), a
// dollar-quoted string ($$...$$, $tag$...$tag$) or a lone $.
func (lx *lexer) dollar(start, line int) (item, error) {
	src := lx.src
	i := lx.pos + 1
	if i < len(src) && isDigit(src[i]) {
		for i < len(src) && isDigit(src[i]) {
			i++
		}
		lx.pos = i
		return lx.token(Param, start, line, src[start:i]), nil
	}
	if i < len(src) && isIdentStart(src[i]) {
		for i < len(src) && isTagChar(src[i]) {
			i++
		}
	}
	if i >= len(src) || src[i] != '$' {
		lx.pos++
		return lx.token(Punct, start, line, "$"), nil
	}
	tag := src[lx.pos : i+1]
	body := i + 1
	end := strings.Index(src[body:], tag)
	if end < 0 {
		return item{}, &SyntaxError{Line: line, Msg: "dollar-quoted string " + tag + " opened here is never closed"}
	}
	value := src[body : body+end]
	lx.advance(body + end + len(tag) - lx.pos)
	return lx.token(DollarString, start, line, value), nil
}

// word reads a keyword or identifier, or a string or identifier with a
// prefix: E'...', B'...', X'...', N'...', U&'...', U&"...".
func (lx *lexer) word(start, line int) (item, error) {
	src := lx.src
	lx.pos++
	for lx.pos < len(src) && isIdentChar(src[lx.pos]) {
		lx.pos++
	}
	w := strings.ToLower(src[start:lx.pos])
	if lx.pos < len(src) && src[lx.pos] == '\'' {
		switch w {
		case "e", "b", "x", "n":
			value, err := lx.quoted('\'', w == "e")
			if err != nil {
				return item{}, err
			}
			return lx.token(String, start, line, value), nil
		}
	}
	if w == "u" && lx.pos+1 < len(src) && src[lx.pos] == '&' && (src[lx.pos+1] == '\'' || src[lx.pos+1] == '"') {
		q := src[lx.pos+1]
		lx.pos++
		value, err := lx.quoted(q, false)
		if err != nil {
			return item{}, err
		}
		kind := String
		if q == '"' {
			kind = QuotedIdent
		}
		return lx.token(kind, start, line, value), nil
	}
	return lx.token(Word, start, line, src[start:lx.pos]), nil
}

// number reads a numeric constant: 42, 3.5, .5, 1e-3, 0x1F, 1_000.
func (lx *lexer) number() {
	src := lx.src
	for lx.pos < len(src) {
		c := src[lx.pos]
		switch {
		case isDigit(c) || c == '.' || c == '_' || isLetter(c):
			if (c == 'e' || c == 'E') && lx.pos+1 < len(src) && (src[lx.pos+1] == '+' || src[lx.pos+1] == '-') {
				lx.pos++
			}
			lx.pos++
		default:
			return
		}
	}
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isIdentStart(c byte) bool { return isLetter(c) || c == '_' || c >= 0x80 }
func isIdentChar(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '$' }
func isTagChar(c byte) bool    { return isIdentStart(c) || isDigit(c) }

func isOperatorChar(c byte) bool {
	return strings.IndexByte("+-*/<>=~!@#%^&|`?", c) >= 0
}
