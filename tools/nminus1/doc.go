// Package nminus1 tests scripts/n-minus-1.sh, the check that the previous release keeps
// working on a database migrated by the current migrations: a migration that breaks the
// previous release must fail it.
//
// The test builds and runs the previous release's end-to-end suite, which takes a minute, so
// it runs only when HERALD_N_MINUS_1=1, as `make n-minus-1` sets it.
package nminus1
