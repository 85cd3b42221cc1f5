package importbench

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var stdMap = []string{"Email:email", "First name:attributes.first_name", "Age:attributes.age"}

// domainRecipients counts the recipients of a domain, and the distinct addresses among them.
func (s *stack) domainRecipients(path string) (rows, distinct int64) {
	s.tb.Helper()
	dom := path[strings.LastIndex(path, "/")+1:]
	require.NoError(s.tb, s.admin.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT email) FROM recipient.recipients WHERE domain_id = $1`, dom).Scan(&rows, &distinct))
	return rows, distinct
}

// A file with every kind of bad row: each is reported with its line and reason, the others
// are imported, and the report adds up.
func TestImportReportsEveryKindOfBadRow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the services")
	}
	t.Parallel()
	s := startStack(t, nil)
	tn := s.signUp()
	file := "Email,First name,Age,Ignored\n" +
		"ann@example.com,Ann,31,x\n" + // 2
		"not-an-email,Bob,40,x\n" + // 3: bad email
		"cy@example.com,Cy,old,x\n" + // 4: age is not a number
		"dee@example.com,Dee\n" + // 5: one column short
		"eve@example.com,Eve,22,x,extra\n" + // 6: one column too many
		"fay@example.com,F\"ay,1,x\n" + // 7: bare quote
		"gus@example.com,\xff\xfeGus,5,x\n" + // 8: not UTF-8
		"\n" + // a blank line: skipped
		"ANN@example.com,Annie,32,x\n" + // 10: Ann again: the last one wins
		"hal@example.com,\"Hal\nwith a newline\",50,x\n" + // 11-12
		",NoEmail,1,x\n" // 13: no email
	im := s.startImport(tn, tn.domainPath, strings.NewReader(file), stdMap...)
	require.Equal(t, "IMPORT_STATE_PENDING", im.State)
	im = s.waitImport(tn, tn.domainPath, im.ID, 2*time.Minute, ended)
	require.Equal(t, "IMPORT_STATE_SUCCEEDED", im.State, "%+v", im)
	require.Equal(t, importReport{
		ID: im.ID, State: im.State, TotalBytes: int64(len(file)), BytesDone: int64(len(file)), Percent: 100,
		RowsDone: 10, Inserted: 2, Updated: 0, Rejected: 7, Duplicates: 1,
	}, im)
	require.Equal(t, im.RowsDone, im.Inserted+im.Updated+im.Rejected+im.Duplicates)
	rows, distinct := s.domainRecipients(tn.domainPath)
	require.Equal(t, int64(2), rows)
	require.Equal(t, int64(2), distinct)

	code, raw := s.do(http.MethodGet, tn.domainPath+"/imports/"+im.ID+"/rejections", tn.token, "", nil, nil)
	require.Equal(t, http.StatusOK, code, "%s", raw)
	recs, err := csv.NewReader(strings.NewReader(string(raw))).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"line", "reason", "row"}, recs[0])
	got := map[string]string{}
	for _, r := range recs[1:] {
		got[r[0]] = r[1]
	}
	for line, reason := range map[string]string{
		"3": "email:", "4": "attributes.age", "5": "the row has 2 fields, the header 4",
		"6": "the row has 5 fields, the header 4", "7": "bare \"", "8": "not UTF-8", "13": "email:",
	} {
		require.Contains(t, got[line], reason, "line %s", line)
	}
	require.Len(t, got, 7)

	// Another company sees nothing of it.
	other := s.signUp()
	code, _ = s.do(http.MethodGet, tn.domainPath+"/imports/"+im.ID, other.token, "", nil, nil)
	require.Equal(t, http.StatusNotFound, code)
	code, _ = s.do(http.MethodGet, tn.domainPath+"/imports/"+im.ID+"/rejections", other.token, "", nil, nil)
	require.Equal(t, http.StatusNotFound, code)
	code, _ = s.upload(other, tn.domainPath, strings.NewReader(file), stdMap...)
	require.Equal(t, http.StatusNotFound, code)
}

// A wrong header is refused before anything is stored, with a message that says what to fix.
func TestImportRefusesWrongHeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the services")
	}
	t.Parallel()
	s := startStack(t, nil)
	tn := s.signUp()
	for name, tc := range map[string]struct {
		file    string
		mapping []string
		want    string
	}{
		"missing column":  {"Mail,First name\na@example.com,A\n", stdMap[:2], `column \"Email\" is not in the header`},
		"no email column": {"Email\na@example.com\n", []string{"Email:attributes.first_name"}, "exactly one column must map to email"},
		"duplicate names": {"Email,Email\na@example.com,b\n", stdMap[:1], `names column \"Email\" twice`},
		"not a csv file":  {"\x00\x01\x02binary\xff\n", stdMap[:1], "is this a CSV file?"},
		"map not text":    {"Email\n", []string{"\xffEmail:email"}, "map: must be UTF-8 text"},
	} {
		code, raw := s.upload(tn, tn.domainPath, strings.NewReader(tc.file), tc.mapping...)
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", name, raw)
		require.Contains(t, string(raw), tc.want, name)
		require.Contains(t, string(raw), `"code":"invalid_argument"`, name)
	}
	var n int
	require.NoError(t, s.admin.QueryRow(context.Background(), `SELECT count(*) FROM recipient.imports`).Scan(&n))
	require.Zero(t, n)
}

// writeFile writes a CSV file of rows recipients (email, first name, last name, age, city),
// every address distinct, and returns its path and size.
func writeFile(tb testing.TB, rows int) (string, int64) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "recipients.csv")
	f, err := os.Create(path)
	require.NoError(tb, err)
	w := csv.NewWriter(f)
	require.NoError(tb, w.Write([]string{"Email", "First name", "Last name", "Age", "City"}))
	cities := []string{"Paris", "Lyon", "Berlin", "Lisbon", "Oslo"}
	for i := range rows {
		require.NoError(tb, w.Write([]string{
			fmt.Sprintf("person.%08d@example.com", i), fmt.Sprintf("First%d", i%1000), fmt.Sprintf("Last%d", i%997),
			fmt.Sprint(18 + i%60), cities[i%len(cities)],
		}))
	}
	w.Flush()
	require.NoError(tb, w.Error())
	st, err := f.Stat()
	require.NoError(tb, err)
	require.NoError(tb, f.Close())
	return path, st.Size()
}

var benchMap = []string{"Email:email", "First name:attributes.first_name", "Last name:attributes.last_name",
	"Age:attributes.age", "City:attributes.city"}

// The worker is killed (SIGKILL) in the middle of a large import and started again: the import
// resumes after its last committed batch and ends with exactly the rows of the file.
func TestImportResumesAfterTheWorkerIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the services and waits for River to rescue the job")
	}
	t.Parallel()
	const rows = 200_000
	// Small batches make the import last long enough to be killed in the middle; a short
	// attempt and the shortest rescue delay let River run the job again soon.
	s := startStack(t, map[string]string{"IMPORT_BATCH_SIZE": "500", "IMPORT_ATTEMPT_DURATION": "5s", "JOB_RESCUE_AFTER": "1m"})
	tn := s.signUp()
	path, size := writeFile(t, rows)
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	im := s.startImport(tn, tn.domainPath, f, benchMap...)
	require.Equal(t, size, im.TotalBytes)

	mid := s.waitImport(tn, tn.domainPath, im.ID, 2*time.Minute, func(im importReport) bool {
		return im.RowsDone >= rows/10 || ended(im)
	})
	require.Equal(t, "IMPORT_STATE_RUNNING", mid.State, "the import must still run when the worker is killed")
	s.worker.kill()
	killed := s.getImport(tn, tn.domainPath, im.ID)
	require.Less(t, killed.RowsDone, int64(rows))

	s.startWorker()
	done := s.waitImport(tn, tn.domainPath, im.ID, 4*time.Minute, ended)
	require.Equal(t, "IMPORT_STATE_SUCCEEDED", done.State, "%+v", done)
	require.Equal(t, int64(rows), done.RowsDone)
	require.Equal(t, int64(rows), done.Inserted)
	require.Zero(t, done.Updated+done.Rejected+done.Duplicates)
	got, distinct := s.domainRecipients(tn.domainPath)
	require.Equal(t, int64(rows), got)
	require.Equal(t, int64(rows), distinct)
}
