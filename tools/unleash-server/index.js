// Starts the Unleash server Herald's feature flag tests run against (libs/flags, see
// docs/flags.md). Everything comes from the environment, so that no secret is ever on a
// command line:
//
//   DATABASE_URL            PostgreSQL database of its own (required; Unleash migrates it)
//   HTTP_PORT               port to listen on (required)
//   HTTP_HOST               address to listen on (default 127.0.0.1)
//   INIT_ADMIN_API_TOKENS   admin API tokens created at start, "*:*.<secret>"
//   INIT_BACKEND_API_TOKENS backend (client) API tokens created at start, "default:development.<secret>"
//                           (INIT_CLIENT_API_TOKENS, its deprecated name, works too)
//   LOG_LEVEL               debug, info, warn or error (default warn)
//
// Unleash reads the tokens itself; they are never printed.
import { start } from 'unleash-server';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`unleash-server: ${name} must be set`);
    process.exit(2);
  }
  return value;
}

const port = Number.parseInt(required('HTTP_PORT'), 10);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error('unleash-server: HTTP_PORT must be a port number');
  process.exit(2);
}

const host = process.env.HTTP_HOST || '127.0.0.1';

const levels = new Set(['debug', 'info', 'warn', 'error']);
const logLevel = process.env.LOG_LEVEL ?? 'warn';
if (!levels.has(logLevel)) {
  console.error('unleash-server: LOG_LEVEL must be debug, info, warn or error');
  process.exit(2);
}

// start() migrates the database, listens, and stops gracefully on SIGTERM and SIGINT.
try {
  await start({
    databaseUrl: required('DATABASE_URL'),
    server: { host, port },
    logLevel,
    // Offline: no version check and no telemetry.
    versionCheck: { enable: false },
    telemetry: false,
  });
  console.log(`unleash-server: listening on ${host}:${port}`);
} catch (err) {
  console.error(`unleash-server: ${err.message}`);
  process.exit(1);
}
