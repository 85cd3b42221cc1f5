package importbench

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// benchRows is the size of the benchmark's file.
const benchRows = 1_000_000

// BenchmarkImport imports a 1,000,000-row CSV file (email and four attribute columns) end to
// end: upload through the gateway, storage in the recipient service, the worker's import job
// upserting batches of IMPORT_BATCH_SIZE rows into an empty domain, until GET reports it
// succeeded. In the same run it measures the raw baseline on the same file: psql \copy into a
// staging table and one INSERT ... ON CONFLICT DO UPDATE into another empty domain. Each batch
// size is a sub-benchmark. Metrics: rows/s (end to end), raw-rows/s, ratio-vs-raw and
// worker-peak-rss-MB (VmHWM of the worker process, which imported nothing else).
func BenchmarkImport(b *testing.B) {
	if _, err := exec.LookPath("psql"); err != nil {
		b.Skip("the raw baseline needs psql on PATH")
	}
	path, _ := writeFile(b, benchRows)
	for _, batch := range []int{500, 5000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			s := startStack(b, map[string]string{"IMPORT_BATCH_SIZE": strconv.Itoa(batch)})
			tn := s.signUp()
			raw := s.rawBaseline(path, tn)

			var elapsed time.Duration
			b.ResetTimer()
			for range b.N {
				dom := s.newDomain(tn)
				f, err := os.Open(path)
				require.NoError(b, err)
				start := time.Now()
				im := s.startImport(tn, dom, f, benchMap...)
				im = s.waitImport(tn, dom, im.ID, 20*time.Minute, ended)
				elapsed += time.Since(start)
				_ = f.Close()
				require.Equal(b, "IMPORT_STATE_SUCCEEDED", im.State, "%+v", im)
				require.Equal(b, int64(benchRows), im.Inserted)
			}
			b.StopTimer()
			rss, err := s.worker.peakRSSMB()
			require.NoError(b, err)
			rate := float64(benchRows*b.N) / elapsed.Seconds()
			rawRate := float64(benchRows) / raw.Seconds()
			b.ReportMetric(rate, "rows/s")
			b.ReportMetric(rawRate, "raw-rows/s")
			b.ReportMetric(rate/rawRate, "ratio-vs-raw")
			b.ReportMetric(rss, "worker-peak-rss-MB")
		})
	}
}

// rawBaseline loads the file with PostgreSQL's own bulk path into a new, empty domain of tn
// and returns how long it took: psql \copy into a staging table, then one upsert.
func (s *stack) rawBaseline(path string, tn tenant) time.Duration {
	s.tb.Helper()
	dom := s.newDomain(tn)
	domainID := dom[strings.LastIndex(dom, "/")+1:]
	script := fmt.Sprintf(`\set ON_ERROR_STOP on
CREATE TEMP TABLE staging (email text, first_name text, last_name text, age text, city text);
\copy staging FROM '%s' WITH (FORMAT csv, HEADER true)
INSERT INTO recipient.recipients AS r (company_id, workspace_id, domain_id, email, attributes)
SELECT '%s', '%s', '%s', lower(email),
       jsonb_build_object('first_name', first_name, 'last_name', last_name, 'age', age::numeric, 'city', city)
FROM staging
ON CONFLICT (domain_id, email) DO UPDATE
    SET attributes = r.attributes || EXCLUDED.attributes, updated_at = now();
`, path, tn.company, tn.workspace, domainID)
	scriptPath := filepath.Join(s.tb.TempDir(), "raw.sql")
	require.NoError(s.tb, os.WriteFile(scriptPath, []byte(script), 0o600))
	start := time.Now()
	cmd := exec.CommandContext(context.Background(), "psql", "-X", "-q", "-d", s.dbURL, "-f", scriptPath)
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	require.NoError(s.tb, err, "psql: %s", out)
	var n int64
	require.NoError(s.tb, s.admin.QueryRow(context.Background(),
		`SELECT count(*) FROM recipient.recipients WHERE domain_id = $1`, domainID).Scan(&n))
	require.Equal(s.tb, int64(benchRows), n)
	return took
}

// largeFileBytes is the size of BenchmarkImportLargeFile's file.
const largeFileBytes = 1 << 30

// BenchmarkImportLargeFile imports a 1 GiB CSV file end to end, to show that neither the upload
// nor the worker holds the file in memory: the rows of BenchmarkImport plus a ~1 KB column that
// the mapping leaves out, so that every byte is uploaded, stored and parsed. Metrics: rows/s,
// MB/s (file bytes per second, upload included) and worker-peak-rss-MB.
func BenchmarkImportLargeFile(b *testing.B) {
	path, rows, size := writeWideFile(b, largeFileBytes)
	s := startStack(b, nil)
	tn := s.signUp()
	var elapsed time.Duration
	b.ResetTimer()
	for range b.N {
		dom := s.newDomain(tn)
		f, err := os.Open(path)
		require.NoError(b, err)
		start := time.Now()
		im := s.startImport(tn, dom, f, benchMap...)
		im = s.waitImport(tn, dom, im.ID, 60*time.Minute, ended)
		elapsed += time.Since(start)
		_ = f.Close()
		require.Equal(b, "IMPORT_STATE_SUCCEEDED", im.State, "%+v", im)
		require.Equal(b, int64(rows), im.Inserted)
	}
	b.StopTimer()
	rss, err := s.worker.peakRSSMB()
	require.NoError(b, err)
	b.ReportMetric(float64(rows*b.N)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(size)*float64(b.N)/1e6/elapsed.Seconds(), "MB/s")
	b.ReportMetric(rss, "worker-peak-rss-MB")
}

// writeWideFile writes a CSV of at least minBytes: the columns of writeFile plus Notes, about
// 1 KB of text that no mapping names. It returns the path, the number of data rows and the
// size in bytes.
func writeWideFile(tb testing.TB, minBytes int64) (string, int, int64) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "recipients-wide.csv")
	f, err := os.Create(path)
	require.NoError(tb, err)
	bw := bufio.NewWriterSize(f, 1<<20)
	w := csv.NewWriter(bw)
	require.NoError(tb, w.Write([]string{"Email", "First name", "Last name", "Age", "City", "Notes"}))
	notes := strings.Repeat("lorem ipsum dolor sit amet, ", 36)
	cities := []string{"Paris", "Lyon", "Berlin", "Lisbon", "Oslo"}
	var written int64
	rows := 0
	for ; written < minBytes; rows++ {
		rec := []string{
			fmt.Sprintf("person.%08d@example.com", rows), fmt.Sprintf("First%d", rows%1000), fmt.Sprintf("Last%d", rows%997),
			fmt.Sprint(18 + rows%60), cities[rows%len(cities)], notes,
		}
		require.NoError(tb, w.Write(rec))
		for _, field := range rec {
			written += int64(len(field)) + 1
		}
	}
	w.Flush()
	require.NoError(tb, w.Error())
	require.NoError(tb, bw.Flush())
	st, err := f.Stat()
	require.NoError(tb, err)
	require.NoError(tb, f.Close())
	return path, rows, st.Size()
}
