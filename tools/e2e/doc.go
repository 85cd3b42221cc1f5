// Package e2e holds Herald's end-to-end tests: they build the five services, run them as
// separate processes against a real PostgreSQL database and Redis, and drive the REST API
// through the gateway the way a client does. They also stop processes and their dependencies
// to check graceful shutdown and recovery.
//
// Two suites guard properties of the whole system rather than of one feature:
//
//   - tenant isolation: every route of the OpenAPI document the gateway serves that names an
//     object is asked for another company's object, with every kind of credential, and must
//     answer 404 showing nothing of it; a new route fails the suite until it is covered;
//   - secret hygiene: every secret of the run (JWT secrets, database and Redis passwords, the
//     Sentry key, user passwords and API keys) is a random sentinel, and once the tests are
//     done none may appear in any process's output, any HTTP answer the tests received, any
//     /metrics, or any report sent to the (fake) Sentry.
//
// Run them with `make test` (or `go test ./e2e` in tools/ with HERALD_TEST_DATABASE_URL set;
// redis-server must be installed: the suite runs its own, which requires a password); -short
// skips them.
package e2e
