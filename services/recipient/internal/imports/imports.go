// Package imports loads recipients into a domain from CSV files. The upload is stored whole,
// in order, as pieces of ChunkSize bytes (recipient.import_chunks) inside one transaction
// that also creates the import and enqueues its River job, so an upload is either complete
// and queued or not there at all. The worker's import job then reads the file back and sends
// it in batches, each applied in one transaction together with the counters and the position
// it reached, so an interrupted import resumes exactly after its last committed batch and a
// batch sent twice is applied once.
package imports

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/tenancy"

	"github.com/heraldmail/herald/services/recipient/internal/fields"
)

// Limits of an upload.
const (
	// ChunkSize is the size of the stored pieces of a file (the last one may be shorter).
	ChunkSize = 1 << 20
	// MaxFileBytes is the largest file accepted.
	MaxFileBytes = 2 << 30
	// MaxHeaderBytes bounds the header line.
	MaxHeaderBytes = ChunkSize
	// MaxColumns bounds the number of columns of the header.
	MaxColumns = 1000
	// MaxBatchRows bounds one batch.
	MaxBatchRows = 50000
)

// Targets of a column.
const (
	TargetEmail      = "email"
	attributesPrefix = "attributes."
)

// State is where an import is in its life.
type State string

// States of an import.
const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// Ended reports whether the import is over.
func (s State) Ended() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// Errors callers map to transport codes.
var (
	// ErrNotFound is an import that does not exist in the tenant.
	ErrNotFound = errors.New("import not found")
	// ErrInvalid is the class of ValidationError.
	ErrInvalid = errors.New("invalid import")
	// ErrOutOfOrder is a batch whose sequence number is not the next one.
	ErrOutOfOrder = errors.New("batch out of order")
)

// ValidationError is a request or file the client must fix; Field names what is wrong.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Column is a column of the file that goes somewhere.
type Column struct {
	// Index is the column's position in a row, from 0.
	Index int `json:"index"`
	// Target is "email" or "attributes.<key>".
	Target string `json:"target"`
}

// Key is the attribute key of an attributes.<key> target, or "".
func (c Column) Key() string {
	k, _ := strings.CutPrefix(c.Target, attributesPrefix)
	if k == c.Target {
		return ""
	}
	return k
}

// Position is where the next batch of an import starts.
type Position struct {
	Offset   int64
	Line     int64
	Sequence int64
}

// Counters are an import's report.
type Counters struct {
	RowsDone   int64
	Inserted   int64
	Updated    int64
	Rejected   int64
	Duplicates int64
}

// Import is one CSV file loaded into a domain.
type Import struct {
	ID          uuid.UUID
	Tenant      tenancy.Tenant
	State       State
	Map         []string
	Columns     []Column
	ColumnCount int
	TotalBytes  int64
	// DataOffset is where the first data row starts (after the header).
	DataOffset int64
	Position   Position
	Counters
	Error     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// BytesDone is how much of the file is applied.
func (im Import) BytesDone() int64 { return im.Position.Offset }

// Percent is BytesDone over TotalBytes, 0 to 100; an ended import that succeeded is 100.
func (im Import) Percent() float64 {
	if im.State == StateSucceeded || im.TotalBytes == 0 {
		if im.State == StateSucceeded {
			return 100
		}
		return 0
	}
	return float64(im.Position.Offset) * 100 / float64(im.TotalBytes)
}

// mapping is one "<CSV header>:<target>" entry.
type mapping struct {
	header, target string
}

// parseMap reads the client's mapping: "<CSV header>:email" or
// "<CSV header>:attributes.<key>"; the header name is everything before the last ':'.
func parseMap(entries []string) ([]mapping, error) {
	if len(entries) == 0 {
		return nil, invalid("map", `is required: give one "<CSV header>:email" entry and one "<CSV header>:attributes.<field key>" per attribute column`)
	}
	var out []mapping
	targets := map[string]string{}
	headers := map[string]bool{}
	emails := 0
	for _, e := range entries {
		i := strings.LastIndexByte(e, ':')
		if i <= 0 {
			return nil, invalid("map", `entry %q must be "<CSV header>:<target>"`, e)
		}
		m := mapping{header: e[:i], target: e[i+1:]}
		switch {
		case m.target == TargetEmail:
			emails++
		case strings.HasPrefix(m.target, attributesPrefix):
			if err := fields.ValidateKey("map", strings.TrimPrefix(m.target, attributesPrefix)); err != nil {
				return nil, invalid("map", "entry %q: the field key must be lower-case snake_case such as first_name", e)
			}
		default:
			return nil, invalid("map", `entry %q: the target must be "email" or "attributes.<field key>"`, e)
		}
		if prev, dup := targets[m.target]; dup {
			return nil, invalid("map", "columns %q and %q both map to %s", prev, m.header, m.target)
		}
		if headers[m.header] {
			return nil, invalid("map", "column %q is mapped twice", m.header)
		}
		targets[m.target] = m.header
		headers[m.header] = true
		out = append(out, m)
	}
	if emails != 1 {
		return nil, invalid("map", `exactly one column must map to email ("<CSV header>:email")`)
	}
	return out, nil
}

// header is the parsed first record of a file.
type header struct {
	columns     []Column
	columnCount int
	// end is the byte offset just after the header; line the line number there.
	end  int64
	line int64
}

// utf8BOM starts files written by some spreadsheet programs; it is not part of the first name.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// parseHeader reads the header of a file from its first bytes (all of them when complete is
// true, else at least MaxHeaderBytes) and resolves the mapping against it. It refuses a header
// that is not CSV in UTF-8, has duplicate or empty names, or lacks a mapped column; an
// attribute column must name a field the workspace defines and has not retired.
func parseHeader(first []byte, complete bool, maps []mapping, defs fields.Definitions) (header, error) {
	if len(first) == 0 {
		return header{}, invalid("file", "is empty: the first line must be the header")
	}
	bom := int64(0)
	if bytes.HasPrefix(first, utf8BOM) {
		bom = int64(len(utf8BOM))
	}
	r := csv.NewReader(bytes.NewReader(first[bom:]))
	r.FieldsPerRecord = -1
	rec, err := r.Read()
	if err != nil {
		return header{}, invalid("file", "the header is not a CSV line: %s", csvReason(err))
	}
	end := bom + r.InputOffset()
	if !complete && end >= int64(len(first)) {
		return header{}, invalid("file", "the header is longer than %d bytes", MaxHeaderBytes)
	}
	if len(rec) > MaxColumns {
		return header{}, invalid("file", "the header has %d columns, more than %d", len(rec), MaxColumns)
	}
	index := map[string]int{}
	for i, name := range rec {
		if !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
			return header{}, invalid("file", "the header is not UTF-8 text: is this a CSV file?")
		}
		if strings.TrimSpace(name) == "" {
			return header{}, invalid("file", "column %d of the header has no name", i+1)
		}
		if _, dup := index[name]; dup {
			return header{}, invalid("file", "the header names column %q twice", name)
		}
		index[name] = i
	}
	h := header{columnCount: len(rec), end: end, line: int64(bytes.Count(first[:end], []byte{'\n'})) + 1}
	if end > 0 && first[end-1] != '\n' {
		h.line++ // a header at the very end of the file, with no newline: the next line is after it
	}
	for _, m := range maps {
		i, ok := index[m.header]
		if !ok {
			return header{}, invalid("map", "column %q is not in the header (it has: %s)", m.header, strings.Join(quoteAll(rec), ", "))
		}
		c := Column{Index: i, Target: m.target}
		if key := c.Key(); key != "" {
			d, ok := defs.Lookup(key)
			if !ok {
				return header{}, invalid("map", "column %q maps to attributes.%s, a field this workspace does not define", m.header, key)
			}
			if d.Retired() {
				return header{}, invalid("map", "column %q maps to attributes.%s, a retired field", m.header, key)
			}
		}
		h.columns = append(h.columns, c)
	}
	return h, nil
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// csvReason is the reason of a CSV parse error, without its position.
func csvReason(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	if errors.Is(err, io.EOF) {
		return "no line"
	}
	return err.Error()
}

// Row is one data row sent by the worker.
type Row struct {
	Line   int64
	Fields []string
}

// Rejection is a row that was not applied, and why.
type Rejection struct {
	Line   int64
	Raw    string
	Reason string
}

// Batch is one batch of an import, as the worker read it.
type Batch struct {
	Sequence   int64
	Rows       []Row
	Rejections []Rejection
	// End is the position after the batch's last row (its Sequence is Batch.Sequence).
	EndOffset int64
	EndLine   int64
	// Last ends the import: failed with Error when it is set, else succeeded.
	Last  bool
	Error string
}

// rawLine writes fields back as one CSV line, for the report of a row rejected after it was
// split into fields.
func rawLine(fs []string) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write(fs) // a strings.Builder never fails
	w.Flush()
	return strings.TrimRight(b.String(), "\n")
}
