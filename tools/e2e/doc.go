// Package e2e holds Herald's end-to-end tests: they build the five services, run them as
// separate processes against a real PostgreSQL database and Redis, and drive the REST API
// through the gateway the way a client does. They also stop processes and their dependencies
// to check graceful shutdown and recovery.
//
// Run them with `make test` (or `go test ./e2e` in tools/ with HERALD_TEST_DATABASE_URL and
// HERALD_TEST_REDIS_ADDR set); -short skips them.
package e2e
