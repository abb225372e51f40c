// api-migrations.js: the API's database migrations, run once per sync by the api-migrations hook Job with the
// API image's own runner (dist/db/migrations.js, runMigrations) before any API pod starts. The API pods run
// with DB_SKIP_MIGRATIONS=true (api/src/bootstrap/database.ts), so replicas never race on the migrations
// (api/src/db/migrations.ts takes no lock; platform-facts §17). Node, CommonJS, no dependency of its own.
//
// Environment: the API's database settings (DB_HOST DB_PORT DB_NAME DB_USER DB_PASSWORD DB_SSL ...), and
//   APP_DIR          where the image keeps the built API (default /app, the Dockerfile's WORKDIR)
//   WAIT_SECONDS     how long to wait for the database to answer (default 300)
'use strict';

const path = require('path');

const HOOK = 'api-migrations';
const appDir = process.env.APP_DIR || '/app';
const waitSeconds = Number(process.env.WAIT_SECONDS || '300');

function log(msg) {
  process.stdout.write(`${HOOK}: ${msg}\n`);
}

function die(msg) {
  process.stderr.write(`${HOOK}: ERROR: ${msg}\n`);
  process.exit(1);
}

async function main() {
  const connection = require(path.join(appDir, 'dist/db/connection'));
  const migrations = require(path.join(appDir, 'dist/db/migrations'));
  const deadline = Date.now() + waitSeconds * 1000;
  while (!(await connection.testConnection())) {
    if (Date.now() > deadline) {
      die(`database ${process.env.DB_NAME} on ${process.env.DB_HOST}:${process.env.DB_PORT} not reachable within ${waitSeconds} s`);
    }
    log('database not reachable yet, retrying in 5 s');
    await new Promise((resolve) => setTimeout(resolve, 5000));
  }
  const before = await migrations.getMigrationStatus();
  log(`${before.applied.length} of ${before.total} migrations applied, ${before.pending.length} pending`);
  await migrations.runMigrations();
  const after = await migrations.getMigrationStatus();
  if (after.pending.length > 0) {
    die(`still pending after the run: ${after.pending.map((m) => m.filename).join(', ')}`);
  }
  log(`done: ${after.applied.length} of ${after.total} migrations applied`);
  await connection.pool.end();
}

main().then(
  () => process.exit(0),
  (err) => die((err && err.message) || String(err)),
);
