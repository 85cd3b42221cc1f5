package imports

import (
	"bytes"
	"context"
	"strings"
	"testing"

	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/stretchr/testify/require"
)

// parseAll runs the parser over file from offset/line and collects its batches.
func parseAll(t *testing.T, file []byte, offset, line int64, batchSize int) ([]*recipientv1.ApplyImportBatchRequest, error) {
	t.Helper()
	begin := &recipientv1.BeginImportRunResponse{ColumnCount: 3, TotalBytes: int64(len(file)), Offset: offset, Line: line}
	p := newParser(bytes.NewReader(file[offset:]), begin, batchSize)
	out := make(chan *recipientv1.ApplyImportBatchRequest, 1000)
	err := p.batches(context.Background(), out)
	close(out)
	var bs []*recipientv1.ApplyImportBatchRequest
	for b := range out {
		bs = append(bs, b)
	}
	return bs, err
}

const header = "email,first,age\n"

func TestParser_everyKindOfRow(t *testing.T) {
	t.Parallel()
	file := header +
		"a@example.com,Ann,1\n" + // line 2
		"\n" + // a blank line: skipped, not a row
		"b@example.com,\"Bea\non two lines\",2\r\n" + // lines 4-5, CRLF
		"c@example.com,C\"y,3\n" + // line 6: bare quote
		"d@example.com,D\n" + // line 7: one field short
		"e@example.com,\xff\xfe,5\n" + // line 8: not UTF-8
		"f@example.com,\"Fay\" x,6\n" + // line 9: text after a closing quote
		"g@example.com,Gus,7" // line 10, no newline at the end
	bs, err := parseAll(t, []byte(file), int64(len(header)), 2, 3)
	require.NoError(t, err)

	var rows []*recipientv1.ImportRow
	var rejects []*recipientv1.ImportRejection
	for i, b := range bs {
		require.Equal(t, int64(i+1), b.GetSequence())
		require.Equal(t, i == len(bs)-1, b.GetLast())
		rows = append(rows, b.GetRows()...)
		rejects = append(rejects, b.GetRejections()...)
	}
	last := bs[len(bs)-1]
	require.Equal(t, int64(len(file)), last.GetEndOffset())
	require.Equal(t, int64(11), last.GetEndLine())
	require.Empty(t, last.GetError())

	require.Len(t, rows, 3)
	require.Equal(t, int64(2), rows[0].GetLine())
	require.Equal(t, int64(4), rows[1].GetLine())
	require.Equal(t, []string{"b@example.com", "Bea\non two lines", "2"}, rows[1].GetFields())
	require.Equal(t, int64(10), rows[2].GetLine())

	require.Len(t, rejects, 4)
	want := []struct {
		line   int64
		reason string
		raw    string
	}{
		{6, "bare \" in non-quoted-field", `c@example.com,C"y,3`},
		{7, "the row has 2 fields, the header 3", "d@example.com,D"},
		{8, "not UTF-8", "e@example.com,\uFFFD,5"},
		{9, "extraneous or missing \" in quoted-field", `f@example.com,"Fay" x,6`},
	}
	for i, w := range want {
		require.Equal(t, w.line, rejects[i].GetLine(), "rejection %d", i)
		require.Contains(t, rejects[i].GetReason(), w.reason)
		require.Equal(t, w.raw, rejects[i].GetRaw())
	}
}

// Resuming from a committed position gives the same lines and offsets as reading through.
func TestParser_resumesAtACommittedPosition(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(header)
	for i := range 100 {
		if i%10 == 3 {
			b.WriteString("x@example.com,\"multi\nline\",1\n")
			continue
		}
		b.WriteString("y@example.com,plain,2\n")
	}
	file := []byte(b.String())
	whole, err := parseAll(t, file, int64(len(header)), 2, 7)
	require.NoError(t, err)
	lines := func(bs []*recipientv1.ApplyImportBatchRequest) []int64 {
		var out []int64
		for _, b := range bs {
			for _, r := range b.GetRows() {
				out = append(out, r.GetLine())
			}
		}
		return out
	}
	all := lines(whole)
	require.Len(t, all, 100)
	for k := range whole[:len(whole)-1] {
		cut := whole[k]
		rest, err := parseAll(t, file, cut.GetEndOffset(), cut.GetEndLine(), 7)
		require.NoError(t, err)
		got := lines(rest)
		require.Equal(t, all[len(all)-len(got):], got, "resumed after batch %d", k+1)
		require.Equal(t, whole[len(whole)-1].GetEndLine(), rest[len(rest)-1].GetEndLine())
	}
}

// A row that never ends (an unclosed quote) fails the import instead of filling the memory.
func TestParser_rowTooLongFailsTheImport(t *testing.T) {
	t.Parallel()
	file := []byte(header + "a@example.com,ok,1\n" + "b@example.com,\"never closed" + strings.Repeat("x", 3*MaxRowBytes))
	bs, err := parseAll(t, file, int64(len(header)), 2, 10)
	require.NoError(t, err)
	last := bs[len(bs)-1]
	require.True(t, last.GetLast())
	require.Contains(t, last.GetError(), "line 3: a row longer than")
	var n int
	for _, b := range bs {
		n += len(b.GetRows())
	}
	require.Equal(t, 1, n, "the rows before it are applied")
}

// A stream that ends before the file does is an error to retry, never a finished import.
func TestParser_shortStreamIsAnError(t *testing.T) {
	t.Parallel()
	file := []byte(header + "a@example.com,ok,1\n")
	begin := &recipientv1.BeginImportRunResponse{ColumnCount: 3, TotalBytes: int64(len(file)) + 100, Offset: int64(len(header)), Line: 2}
	p := newParser(bytes.NewReader(file[len(header):]), begin, 10)
	out := make(chan *recipientv1.ApplyImportBatchRequest, 10)
	err := p.batches(context.Background(), out)
	require.ErrorContains(t, err, "import file ended at byte")
}
