package e2e

import "os"

// EnvDatabaseURL names the variable that points the suite's shared system at a given database
// instead of a fresh clone of pgtest's template: a superuser (or owner) postgres:// URL of a
// database that is already migrated, e.g. by `migrate up` of a newer release, as
// scripts/n-minus-1.sh does. The suite writes to it and does not drop it. Tests that start
// services of their own still use databases of their own.
const EnvDatabaseURL = "HERALD_E2E_DATABASE_URL"

// givenDatabaseURL returns the value of EnvDatabaseURL, and whether it is set and not empty.
func givenDatabaseURL() (string, bool) {
	v, ok := os.LookupEnv(EnvDatabaseURL)
	return v, ok && v != ""
}
