package importbench

import (
	"context"
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
