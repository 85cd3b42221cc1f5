package e2e

import (
	"context"
	"fmt"
	"os"

	"github.com/heraldmail/herald/migrations"
	"github.com/heraldmail/herald/migrations/pgtest"
)

// systemDatabaseURL returns the database of the shared system: the one named by
// EnvDatabaseURL, once checked to be migrated, or else a fresh clone of pgtest's template.
func systemDatabaseURL(tb *mainTB) (string, error) {
	if given, ok := givenDatabaseURL(); ok {
		if err := requireMigrated(given); err != nil {
			return "", err
		}
		fmt.Fprintf(os.Stderr, "e2e: the shared system uses the database named by %s\n", EnvDatabaseURL)
		return given, nil
	}
	var databaseURL string
	err := tb.run(func() { databaseURL = pgtest.URL(tb) })
	return databaseURL, err
}

// requireMigrated checks that no schema of databaseURL is dirty or behind this tree's
// migrations (a newer release may have gone further).
func requireMigrated(databaseURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	statuses, err := migrations.Status(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("%s: %w", EnvDatabaseURL, err)
	}
	for _, st := range statuses {
		if st.Dirty || st.Version < st.Latest {
			return fmt.Errorf("%s: schema %s is at version %d (dirty: %t) and these migrations reach %d: run migrate up on it first",
				EnvDatabaseURL, st.Schema, st.Version, st.Dirty, st.Latest)
		}
	}
	return nil
}
