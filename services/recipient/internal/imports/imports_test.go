package imports_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/heraldmail/herald/libs/jobs"
	"github.com/heraldmail/herald/libs/tenancy"
	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/heraldmail/herald/services/recipient/internal/imports"
	"github.com/heraldmail/herald/services/recipient/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type bundle struct {
	admin  *pgxpool.Pool // the migrating role, for checks and fixtures
	pool   *pgxpool.Pool // the service's role
	tenant tenancy.Tenant
}

func setup(t *testing.T) (*imports.Service, bundle) {
	t.Helper()
	url := pgtest.URL(t)
	admin := pgtest.Open(t, url)
	pool := pgtest.Open(t, pgtest.URLAs(t, url, migrations.RoleRecipient))
	ins, err := jobs.NewInserter(pool)
	require.NoError(t, err)
	b := bundle{admin: admin, pool: pool, tenant: tenancy.Tenant{CompanyID: uuid.New(), WorkspaceID: uuid.New(), DomainID: uuid.New()}}
	_, err = admin.Exec(context.Background(), `INSERT INTO recipient.field_definitions (company_id, workspace_id, key, label, type)
		VALUES ($1, $2, 'first_name', 'First name', 'text'), ($1, $2, 'age', 'Age', 'number')`,
		b.tenant.CompanyID, b.tenant.WorkspaceID)
	require.NoError(t, err)
	return imports.NewService(pool, ins, imports.Rules{Definitions: store.DefinitionsTx}, time.Now), b
}

// pieces yields a file in pieces of n bytes.
type pieces struct {
	data []byte
	n    int
}

func (p *pieces) Next() ([]byte, error) {
	if len(p.data) == 0 {
		return nil, io.EOF
	}
	k := min(p.n, len(p.data))
	out := p.data[:k]
	p.data = p.data[k:]
	return out, nil
}

var stdMap = []string{"E-mail:email", "First name:attributes.first_name", "Age:attributes.age"}

func (b bundle) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.admin.QueryRow(context.Background(), q, args...).Scan(&n))
	return n
}

func TestUpload_refusesBadHeadersAndStoresNothing(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	cases := map[string]struct {
		file string
		m    []string
		want string
	}{
		"no mapping":          {"E-mail\na@example.com\n", nil, "map: is required"},
		"no email target":     {"E-mail\n", []string{"E-mail:attributes.first_name"}, "exactly one column must map to email"},
		"two email targets":   {"A,B\n", []string{"A:email", "B:email"}, "both map to email"},
		"bad target":          {"A\n", []string{"A:name"}, `the target must be "email"`},
		"missing column":      {"Mail,First name\n", stdMap[:2], `column "E-mail" is not in the header`},
		"duplicate columns":   {"E-mail,E-mail\n", stdMap[:1], `names column "E-mail" twice`},
		"unknown field":       {"E-mail,Plan\n", []string{"E-mail:email", "Plan:attributes.plan"}, "a field this workspace does not define"},
		"empty file":          {"", stdMap[:1], "file: is empty"},
		"not text":            {"\xff\xfe\x00b\x00i\x00n\n", []string{"\xff\xfe\x00b\x00i\x00n:email"}, "not UTF-8 text"},
		"not csv":             {"\"E-mail\nno closing quote", stdMap[:1], "the header is not a CSV line"},
		"unnamed column":      {"E-mail,,Age\n", stdMap[:1], "has no name"},
		"mapped twice":        {"E-mail\n", []string{"E-mail:email", "E-mail:attributes.first_name"}, "mapped twice"},
		"malformed map entry": {"E-mail\n", []string{"email"}, `must be "<CSV header>:<target>"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := svc.Upload(context.Background(), b.tenant, tc.m, &pieces{data: []byte(tc.file), n: 7})
			require.ErrorIs(t, err, imports.ErrInvalid)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	require.Zero(t, b.count(t, `SELECT count(*) FROM recipient.imports`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM recipient.import_chunks`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM river.river_job`))
}

// bigFile is a file of n rows of about 60 bytes: several stored pieces for n = 50000.
func bigFile(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString("E-mail,First name,Age\n")
	for i := range n {
		buf.WriteString("someone-")
		buf.WriteString(strings.Repeat("x", 20))
		buf.WriteString(uuid.NewString()[:8])
		_, _ = buf.WriteString("@example.com,Name,")
		buf.WriteString(string(rune('1' + i%9)))
		buf.WriteString("\n")
	}
	return buf.Bytes()
}

func TestUpload_storesTheFileAndEnqueuesTheJobTogether(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	file := bigFile(50000)
	im, err := svc.Upload(ctx, b.tenant, stdMap, &pieces{data: file, n: 100_000})
	require.NoError(t, err)
	require.Equal(t, imports.StatePending, im.State)
	require.Equal(t, int64(len(file)), im.TotalBytes)
	require.Equal(t, int64(len("E-mail,First name,Age\n")), im.Position.Offset)
	require.Equal(t, int64(2), im.Position.Line)
	require.Equal(t, (len(file)+imports.ChunkSize-1)/imports.ChunkSize,
		b.count(t, `SELECT count(*) FROM recipient.import_chunks WHERE import_id = $1`, im.ID))
	require.Equal(t, 1, b.count(t, `SELECT count(*) FROM river.river_job WHERE kind = 'import' AND args->>'import_id' = $1`, im.ID.String()))

	// The stored file reads back whole, from any offset.
	for _, from := range []int64{0, 1, imports.ChunkSize - 1, imports.ChunkSize, int64(len(file)) - 3} {
		var got bytes.Buffer
		require.NoError(t, svc.ReadFile(ctx, b.tenant, im.ID, from, func(p []byte) error { _, err := got.Write(p); return err }))
		require.Equal(t, file[from:], got.Bytes(), "from %d", from)
	}

	// A byte order mark before the header is not part of the first name.
	bom, err := svc.Upload(ctx, b.tenant, stdMap, &pieces{data: []byte("\xEF\xBB\xBF\"E-mail\",First name,Age\r\na@example.com,A,1\r\n"), n: 5})
	require.NoError(t, err)
	require.Equal(t, int64(len("\xEF\xBB\xBF\"E-mail\",First name,Age\r\n")), bom.Position.Offset)
	require.Equal(t, int64(2), bom.Position.Line)

	// Another tenant sees none of it.
	other := b.tenant
	other.DomainID = uuid.New()
	_, err = svc.Get(ctx, other, im.ID)
	require.ErrorIs(t, err, imports.ErrNotFound)
}

// A source that fails half-way leaves nothing behind.
func TestUpload_failedUploadLeavesNothing(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	file := bigFile(40000)
	_, err := svc.Upload(context.Background(), b.tenant, stdMap, &failing{pieces: pieces{data: file, n: 64 << 10}, after: 30})
	require.ErrorIs(t, err, errClientGone)
	require.Zero(t, b.count(t, `SELECT count(*) FROM recipient.imports`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM recipient.import_chunks`))
	require.Zero(t, b.count(t, `SELECT count(*) FROM river.river_job`))
}

var errClientGone = io.ErrClosedPipe

type failing struct {
	pieces
	after int
}

func (f *failing) Next() ([]byte, error) {
	if f.after == 0 {
		return nil, errClientGone
	}
	f.after--
	return f.pieces.Next()
}

func rows(line int64, rs ...[]string) []imports.Row {
	out := make([]imports.Row, len(rs))
	for i, r := range rs {
		out[i] = imports.Row{Line: line + int64(i), Fields: r}
	}
	return out
}

func TestApply_countsRejectsAndDuplicatesAndAppliesABatchOnce(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	// An existing recipient: the import updates it (and keeps its other attributes).
	require.NoError(t, tenancy.InTx(ctx, b.pool, b.tenant, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO recipient.recipients (company_id, workspace_id, domain_id, email, attributes)
			VALUES ($1, $2, $3, 'old@example.com', '{"age": 40, "first_name": "Old"}')`, b.tenant.CompanyID, b.tenant.WorkspaceID, b.tenant.DomainID)
		return err
	}))
	im, err := svc.Upload(ctx, b.tenant, stdMap, &pieces{data: []byte("E-mail,First name,Age\nfile-content-is-not-read-here\n"), n: 1 << 20})
	require.NoError(t, err)
	im, err = svc.BeginRun(ctx, b.tenant, im.ID)
	require.NoError(t, err)
	require.Equal(t, imports.StateRunning, im.State)

	first := imports.Batch{
		Sequence: 1,
		Rows: rows(2,
			[]string{"a@example.com", "Ann", "31"},
			[]string{"not-an-email", "Bob", "1"},
			[]string{"b@example.com", "Bea", "old"}, // age is not a number
			[]string{"A@Example.com", "Anna", ""},   // the same address: the last one wins
			[]string{"OLD@example.com", "", "41"},   // exists: updated, first_name kept
			[]string{"c@example.com", "Cy"},         // one field short
		),
		Rejections: []imports.Rejection{{Line: 8, Raw: `"broken`, Reason: "not a CSV row: bare quote"}},
		EndOffset:  30, EndLine: 9,
	}
	im, err = svc.Apply(ctx, b.tenant, im.ID, first)
	require.NoError(t, err)
	require.Equal(t, imports.Counters{RowsDone: 7, Inserted: 1, Updated: 1, Rejected: 4, Duplicates: 1}, im.Counters)
	require.Equal(t, imports.Position{Offset: 30, Line: 9, Sequence: 1}, im.Position)

	// The same batch again (a retry after a lost answer) changes nothing.
	again, err := svc.Apply(ctx, b.tenant, im.ID, first)
	require.NoError(t, err)
	require.Equal(t, im.Counters, again.Counters)

	// A batch out of order is refused.
	_, err = svc.Apply(ctx, b.tenant, im.ID, imports.Batch{Sequence: 3, EndOffset: 40, EndLine: 10})
	require.ErrorIs(t, err, imports.ErrOutOfOrder)

	// An address of an earlier batch of the same file is a duplicate, not an update.
	im, err = svc.Apply(ctx, b.tenant, im.ID, imports.Batch{
		Sequence: 2, Rows: rows(9, []string{"a@example.com", "Annie", "32"}), EndOffset: 52, EndLine: 10, Last: true,
	})
	require.NoError(t, err)
	require.Equal(t, imports.StateSucceeded, im.State)
	require.Equal(t, imports.Counters{RowsDone: 8, Inserted: 1, Updated: 1, Rejected: 4, Duplicates: 2}, im.Counters)
	require.Equal(t, im.RowsDone, im.Inserted+im.Updated+im.Rejected+im.Duplicates)
	require.Zero(t, b.count(t, `SELECT count(*) FROM recipient.import_chunks WHERE import_id = $1`, im.ID), "the file is dropped once the import ends")

	var attrs map[string]any
	require.NoError(t, tenancy.InTx(ctx, b.pool, b.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT attributes FROM recipient.recipients WHERE email = 'a@example.com'`).Scan(&attrs)
	}))
	require.Equal(t, map[string]any{"first_name": "Annie", "age": float64(32)}, attrs)
	require.NoError(t, tenancy.InTx(ctx, b.pool, b.tenant, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT attributes FROM recipient.recipients WHERE email = 'old@example.com'`).Scan(&attrs)
	}))
	require.Equal(t, map[string]any{"first_name": "Old", "age": float64(41)}, attrs)

	var got []imports.Rejection
	require.NoError(t, svc.Rejections(ctx, b.tenant, im.ID, func(rs []imports.Rejection) error { got = append(got, rs...); return nil }))
	require.Len(t, got, 4)
	require.Equal(t, int64(3), got[0].Line)
	require.Equal(t, "not-an-email,Bob,1", got[0].Raw)
	require.Contains(t, got[0].Reason, "email:")
	require.Equal(t, int64(4), got[1].Line)
	require.Contains(t, got[1].Reason, "attributes.age")
	require.Equal(t, int64(7), got[2].Line)
	require.Contains(t, got[2].Reason, "2 fields, the header 3")
	require.Equal(t, int64(8), got[3].Line)

	// A batch after the end is not applied.
	after, err := svc.Apply(ctx, b.tenant, im.ID, imports.Batch{Sequence: 3, EndOffset: 52, EndLine: 10})
	require.NoError(t, err)
	require.Equal(t, im.Counters, after.Counters)
}

func TestCancel_stopsTheNextBatch(t *testing.T) {
	t.Parallel()
	svc, b := setup(t)
	ctx := context.Background()
	im, err := svc.Upload(ctx, b.tenant, stdMap, &pieces{data: bigFile(10), n: 1 << 20})
	require.NoError(t, err)
	_, err = svc.BeginRun(ctx, b.tenant, im.ID)
	require.NoError(t, err)
	im, err = svc.Apply(ctx, b.tenant, im.ID, imports.Batch{Sequence: 1, Rows: rows(2, []string{"a@example.com", "A", "1"}), EndOffset: 60, EndLine: 3})
	require.NoError(t, err)
	require.Equal(t, int64(1), im.Inserted)

	im, err = svc.Cancel(ctx, b.tenant, im.ID)
	require.NoError(t, err)
	require.Equal(t, imports.StateCancelled, im.State)
	im, err = svc.Apply(ctx, b.tenant, im.ID, imports.Batch{Sequence: 2, Rows: rows(3, []string{"b@example.com", "B", "1"}), EndOffset: 120, EndLine: 4})
	require.NoError(t, err)
	require.Equal(t, imports.StateCancelled, im.State)
	require.Equal(t, int64(1), im.Inserted, "nothing after the cancel")
	begin, err := svc.BeginRun(ctx, b.tenant, im.ID)
	require.NoError(t, err)
	require.Equal(t, imports.StateCancelled, begin.State, "a job that starts later stops at once")
	again, err := svc.Cancel(ctx, b.tenant, im.ID)
	require.NoError(t, err)
	require.Equal(t, imports.StateCancelled, again.State)
}

// An erased address is rejected, not imported again.
func TestApply_rejectsErasedAddresses(t *testing.T) {
	t.Parallel()
	_, b := setup(t)
	ctx := context.Background()
	ins, err := jobs.NewInserter(b.pool)
	require.NoError(t, err)
	svc := imports.NewService(b.pool, ins, imports.Rules{
		Definitions: store.DefinitionsTx,
		Suppressed: func(_ context.Context, _ pgx.Tx, _ tenancy.Tenant, emails []string) (map[string]bool, error) {
			out := map[string]bool{}
			for _, e := range emails {
				out[e] = e == "erased@example.com"
			}
			return out, nil
		},
	}, time.Now)
	im, err := svc.Upload(ctx, b.tenant, stdMap[:1], &pieces{data: []byte("E-mail\nerased@example.com\nkept@example.com\n"), n: 1 << 20})
	require.NoError(t, err)
	_, err = svc.BeginRun(ctx, b.tenant, im.ID)
	require.NoError(t, err)
	im, err = svc.Apply(ctx, b.tenant, im.ID, imports.Batch{
		Sequence: 1, Rows: rows(2, []string{"Erased@example.com"}, []string{"kept@example.com"}), EndOffset: im.TotalBytes, EndLine: 4, Last: true,
	})
	require.NoError(t, err)
	require.Equal(t, imports.Counters{RowsDone: 2, Inserted: 1, Rejected: 1}, im.Counters)
	var got []imports.Rejection
	require.NoError(t, svc.Rejections(ctx, b.tenant, im.ID, func(rs []imports.Rejection) error { got = append(got, rs...); return nil }))
	require.Len(t, got, 1)
	require.Contains(t, got[0].Reason, "erased")
}
