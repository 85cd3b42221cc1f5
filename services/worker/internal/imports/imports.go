// Package imports runs the import jobs: it reads an import's stored CSV file back from the
// recipient service as a stream (never whole in memory), splits it into rows, and sends them
// in numbered batches that the recipient service applies one transaction each. The next batch
// is read while the previous one is applied. Each batch commits the position after its last
// row, so a job that stops for any reason (a deploy, a crash, the end of its time slice)
// resumes after the last batch that committed, and a batch sent twice is applied once.
package imports

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	recipientv1 "github.com/heraldmail/herald/proto/gen/go/herald/recipient/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults of Options.
const (
	// DefaultBatchSize is the number of rows per batch (see docs/imports.md for the figures
	// behind it).
	DefaultBatchSize = 5000
	// DefaultAttemptDuration is how long one attempt of a job works before it hands over to the
	// next attempt (snoozes), so that the job's River timeout stays short and a job whose worker
	// died is rescued soon.
	DefaultAttemptDuration = time.Minute
	// AttemptGrace is added to the attempt duration for the job's River timeout: the batch in
	// flight when the attempt's time is up still completes.
	AttemptGrace = 30 * time.Second
	// MaxRowBytes bounds one row: a longer one (an unclosed quote swallowing the file, or a
	// file that is not CSV) fails the import instead of filling the memory.
	MaxRowBytes = 1 << 20
	// maxBatchBytes keeps a batch well under the gRPC message limit (8 MiB).
	maxBatchBytes = 4 << 20
)

// Options tune the worker.
type Options struct {
	// BatchSize is the number of rows per batch; 0 means DefaultBatchSize.
	BatchSize int
	// AttemptDuration is how long one attempt works; 0 means DefaultAttemptDuration.
	AttemptDuration time.Duration
	// Registry receives the import metrics; nil means none are exported.
	Registry prometheus.Registerer
}

// metrics are the import rates: rows by outcome, and batches applied.
type metrics struct {
	rows    *prometheus.CounterVec
	batches prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_import_rows_total",
			Help: "Rows of CSV imports applied, by outcome (inserted, updated, rejected, duplicate).",
		}, []string{"outcome"}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_import_batches_total",
			Help: "Batches of CSV imports applied.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.rows, m.batches} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register import metrics: %w", err)
			}
		}
	}
	return m, nil
}

// observe counts what one batch changed, from the import's counters before and after it.
func (m *metrics) observe(before, after *recipientv1.Import) {
	m.batches.Inc()
	for outcome, d := range map[string]int64{
		"inserted":  after.GetInserted() - before.GetInserted(),
		"updated":   after.GetUpdated() - before.GetUpdated(),
		"rejected":  after.GetRejected() - before.GetRejected(),
		"duplicate": after.GetDuplicates() - before.GetDuplicates(),
	} {
		if d > 0 {
			m.rows.WithLabelValues(outcome).Add(float64(d))
		}
	}
}

// Worker executes jobs.ImportArgs.
type Worker struct {
	river.WorkerDefaults[jobs.ImportArgs]
	client recipientv1.ImportServiceClient
	signer *tenancy.Signer
	log    *zap.Logger
	opts   Options
	m      *metrics
}

// NewWorker returns a worker that calls client with service tokens minted by signer.
func NewWorker(client recipientv1.ImportServiceClient, signer *tenancy.Signer, log *zap.Logger, opts Options) (*Worker, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.AttemptDuration <= 0 {
		opts.AttemptDuration = DefaultAttemptDuration
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	return &Worker{client: client, signer: signer, log: log, opts: opts, m: m}, nil
}

// Timeout implements river.Worker: one attempt's time slice and the grace for its last batch.
// A finite timeout is what lets River rescue the job of a worker that died.
func (w *Worker) Timeout(*river.Job[jobs.ImportArgs]) time.Duration {
	return w.opts.AttemptDuration + AttemptGrace
}

// Work implements river.Worker.
func (w *Worker) Work(ctx context.Context, job *river.Job[jobs.ImportArgs]) error {
	a := job.Args
	for _, id := range []struct {
		name  string
		value uuid.UUID
	}{{"company_id", a.CompanyID}, {"workspace_id", a.WorkspaceID}, {"domain_id", a.DomainID}, {"import_id", a.ImportID}} {
		if id.value == uuid.Nil {
			return river.JobCancel(fmt.Errorf("import job without %s", id.name))
		}
	}
	r := &run{w: w, args: a, tenant: tenancy.Tenant{CompanyID: a.CompanyID, WorkspaceID: a.WorkspaceID, DomainID: a.DomainID}}
	err := r.run(ctx, time.Now().Add(w.opts.AttemptDuration))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errSliceOver):
		return river.JobSnooze(0)
	case status.Code(err) == codes.NotFound:
		w.log.Info("import not found; job dropped", zap.Int64("job_id", job.ID), zap.Stringer("import_id", a.ImportID))
		return nil
	case status.Code(err) == codes.InvalidArgument, status.Code(err) == codes.PermissionDenied:
		return river.JobCancel(err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return errors.Join(cerr, err)
	}
	return err
}

// errSliceOver ends an attempt whose time is up; the job goes on in the next attempt.
var errSliceOver = errors.New("attempt time slice over")

// run is one attempt of one import job.
type run struct {
	w      *Worker
	args   jobs.ImportArgs
	tenant tenancy.Tenant
}

// call returns ctx with a fresh service token narrowed to the import's partition: an import
// outlives one token.
func (r *run) call(ctx context.Context) (context.Context, error) {
	tok, err := r.w.signer.ServiceTokenFor(jobs.Executor, r.tenant)
	if err != nil {
		return nil, fmt.Errorf("mint service token: %w", err)
	}
	return tenancy.WithToken(ctx, tok), nil
}

func (r *run) run(ctx context.Context, deadline time.Time) error {
	cctx, err := r.call(ctx)
	if err != nil {
		return err
	}
	begin, err := r.w.client.BeginImportRun(cctx, &recipientv1.BeginImportRunRequest{
		WorkspaceId: r.args.WorkspaceID.String(), DomainId: r.args.DomainID.String(), ImportId: r.args.ImportID.String(),
	})
	if err != nil {
		return fmt.Errorf("begin import run: %w", err)
	}
	if begin.GetState() != recipientv1.ImportState_IMPORT_STATE_RUNNING {
		return nil
	}

	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	rctx, err := r.call(readCtx)
	if err != nil {
		return err
	}
	stream, err := r.w.client.ReadImportFile(rctx, &recipientv1.ReadImportFileRequest{
		WorkspaceId: r.args.WorkspaceID.String(), DomainId: r.args.DomainID.String(), ImportId: r.args.ImportID.String(),
		Offset: begin.GetOffset(),
	})
	if err != nil {
		return fmt.Errorf("read import file: %w", err)
	}
	p := newParser(&streamReader{recv: func() ([]byte, error) {
		m, err := stream.Recv()
		return m.GetChunk(), err
	}}, begin, r.w.opts.BatchSize)

	// The parser reads the next batch while the previous one is applied.
	batches := make(chan *recipientv1.ApplyImportBatchRequest, 1)
	parseErr := make(chan error, 1)
	go func() {
		defer close(batches)
		parseErr <- p.batches(readCtx, batches)
	}()
	defer func() {
		stopRead()
		for range batches { //nolint:revive // drain so the parser ends
		}
	}()

	last := begin.GetImport()
	for b := range batches {
		b.WorkspaceId, b.DomainId, b.ImportId = r.args.WorkspaceID.String(), r.args.DomainID.String(), r.args.ImportID.String()
		actx, err := r.call(ctx)
		if err != nil {
			return err
		}
		resp, err := r.w.client.ApplyImportBatch(actx, b)
		if err != nil {
			return fmt.Errorf("apply import batch %d: %w", b.GetSequence(), err)
		}
		if last != nil && resp.GetImport().GetRowsDone() > last.GetRowsDone() {
			r.w.m.observe(last, resp.GetImport())
		}
		last = resp.GetImport()
		if resp.GetImport().GetState() != recipientv1.ImportState_IMPORT_STATE_RUNNING {
			return nil // ended with this batch, or cancelled
		}
		if time.Now().After(deadline) {
			return errSliceOver
		}
	}
	if err := <-parseErr; err != nil {
		return err
	}
	return errors.New("import file ended without a last batch")
}

// streamReader turns a stream of chunks into an io.Reader.
type streamReader struct {
	recv func() ([]byte, error)
	buf  []byte
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		b, err := s.recv()
		if err != nil {
			return 0, err
		}
		s.buf = b
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// errRowTooLong is a row longer than MaxRowBytes.
var errRowTooLong = errors.New("row too long")

// recorder keeps the bytes read from src since the end of the last row, so that a rejected
// row can be reported as it was written; it refuses to keep more than MaxRowBytes past that
// point, which bounds the memory a malformed file can take.
type recorder struct {
	src  io.Reader
	data []byte
	// start indexes data at absolute offset base.
	start int
	base  int64
	read  int64
}

func (rc *recorder) Read(p []byte) (int, error) {
	if len(rc.data)-rc.start > MaxRowBytes+64<<10 {
		return 0, errRowTooLong
	}
	n, err := rc.src.Read(p)
	rc.data = append(rc.data, p[:n]...)
	rc.read += int64(n)
	return n, err
}

// take returns the bytes from the last mark to the absolute offset end and marks end.
func (rc *recorder) take(end int64) []byte {
	k := int(end - rc.base)
	out := rc.data[rc.start : rc.start+k]
	rc.start += k
	rc.base = end
	if rc.start > 1<<20 && rc.start > len(rc.data)/2 {
		n := copy(rc.data, rc.data[rc.start:])
		rc.data = rc.data[:n]
		rc.start = 0
	}
	return out
}

// parser splits the file, from the committed position, into batches.
type parser struct {
	rec       *recorder
	csv       *csv.Reader
	columns   int
	total     int64
	offset    int64 // absolute offset the reader started at
	line      int64 // line at the current position
	sequence  int64
	batchSize int
}

func newParser(src io.Reader, begin *recipientv1.BeginImportRunResponse, batchSize int) *parser {
	rec := &recorder{src: src, base: begin.GetOffset()}
	c := csv.NewReader(rec)
	c.FieldsPerRecord = -1
	return &parser{
		rec: rec, csv: c, columns: int(begin.GetColumnCount()), total: begin.GetTotalBytes(),
		offset: begin.GetOffset(), line: begin.GetLine(), sequence: begin.GetSequence(), batchSize: batchSize,
	}
}

// batches sends the batches of the rest of the file to out, the last one marked Last (with
// Error when the file cannot be read to its end). A failure to read the stream itself is
// returned, and the job retries from the committed position.
func (p *parser) batches(ctx context.Context, out chan<- *recipientv1.ApplyImportBatchRequest) error {
	b := p.newBatch()
	size := 0
	flush := func(last bool, reason string) bool {
		b.EndOffset, b.EndLine, b.Last, b.Error = p.rec.base, p.line, last, reason
		select {
		case out <- b:
		case <-ctx.Done():
			return false
		}
		b, size = p.newBatch(), 0
		return true
	}
	for {
		fs, err := p.csv.Read()
		end := p.offset + p.csv.InputOffset()
		switch {
		case errors.Is(err, io.EOF):
			if p.rec.read != p.total-p.offset {
				return fmt.Errorf("import file ended at byte %d of %d", p.offset+p.rec.read, p.total)
			}
			flush(true, "")
			return nil
		case errors.Is(err, errRowTooLong):
			flush(true, fmt.Sprintf("line %d: a row longer than %d bytes (an unclosed quote, or not a CSV file?)", p.line, MaxRowBytes))
			return nil
		case err != nil && !isParseError(err):
			return fmt.Errorf("read import file: %w", err)
		}
		startLine := p.line
		raw := p.rec.take(end)
		p.line += int64(bytes.Count(raw, []byte{'\n'}))
		if end == p.total && len(raw) > 0 && raw[len(raw)-1] != '\n' {
			p.line++
		}
		// Blank lines before the row are skipped by the reader: the row starts after them.
		trimmed := bytes.TrimLeft(raw, "\r\n")
		startLine += int64(bytes.Count(raw[:len(raw)-len(trimmed)], []byte{'\n'}))
		rawText := strings.TrimRight(string(trimmed), "\r\n")
		size += len(raw)
		switch {
		case err != nil:
			b.Rejections = append(b.Rejections, reject(startLine, rawText, "not a CSV row: "+parseReason(err)))
		case !validUTF8(fs):
			b.Rejections = append(b.Rejections, reject(startLine, rawText, "the row is not UTF-8 text"))
		case len(fs) != p.columns:
			b.Rejections = append(b.Rejections, reject(startLine, rawText, fmt.Sprintf("the row has %d fields, the header %d", len(fs), p.columns)))
		default:
			b.Rows = append(b.Rows, &recipientv1.ImportRow{Line: startLine, Fields: fs})
		}
		if len(b.Rows)+len(b.Rejections) >= p.batchSize || size >= maxBatchBytes {
			if !flush(false, "") {
				return nil
			}
		}
	}
}

func (p *parser) newBatch() *recipientv1.ApplyImportBatchRequest {
	p.sequence++
	return &recipientv1.ApplyImportBatchRequest{Sequence: p.sequence}
}

func reject(line int64, raw, reason string) *recipientv1.ImportRejection {
	return &recipientv1.ImportRejection{Line: line, Raw: strings.ToValidUTF8(raw, string(utf8.RuneError)), Reason: reason}
}

func validUTF8(fs []string) bool {
	for _, f := range fs {
		if !utf8.ValidString(f) {
			return false
		}
	}
	return true
}

func isParseError(err error) bool {
	var pe *csv.ParseError
	return errors.As(err, &pe)
}

func parseReason(err error) string {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
