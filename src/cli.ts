import { Command } from 'commander';
import closeWithGrace from 'close-with-grace';
import { pino, type Logger } from 'pino';
import { startApp, startEmbeddedDatabase, type App } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { shutdownMsMax } from './engine/limits.ts';
import { EmbeddedPostgresError } from './persistence/embedded-postgres.ts';
import { migrate } from './persistence/migrate.ts';
import { DatabaseUrlError, parseDatabaseUrl } from './persistence/multi-host.ts';
import { verifyDatabase } from './audit/verify-database.ts';
import { formatVerifyReport } from './audit/format-report.ts';

/** Ends the process with one line on stderr: what went wrong and what to change, no stack trace. */
function exitWith(code: number, line: string): never {
  process.stderr.write(`secventory: ${line}\n`);
  process.exit(code);
}

function configOrExit(): Config {
  try {
    const config = loadConfig();
    // The multi-host form (libpq's) is read by persistence; a URL it cannot read stops here, before anything starts.
    if (config.databaseUrl !== undefined) parseDatabaseUrl(config.databaseUrl);
    return config;
  } catch (error) {
    if (error instanceof ConfigError) exitWith(1, error.message);
    if (error instanceof DatabaseUrlError) exitWith(1, `invalid configuration: ${error.message}`);
    throw error;
  }
}

const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split('\n')[0]!.trim();

/** Why a command could not reach or start its database, in one line that says what to change. */
function databaseFailure(error: unknown, config: Config): string {
  if (error instanceof EmbeddedPostgresError) {
    const hint = error.kind === 'data-directory' ? '; set SECVENTORY_DATA_DIR to another directory' : '';
    return `${error.message}${hint}`;
  }
  return `${firstLine(error)}${config.databaseUrl === undefined ? '' : '; check DATABASE_URL'}`;
}

/** Why `serve` could not start, in one line that says what to change. */
function startFailure(error: unknown, config: Config): string {
  const { code, syscall, hostname } = (error ?? {}) as NodeJS.ErrnoException & { hostname?: string };
  const where = `port ${config.port} on ${config.host}`;
  if (syscall === 'listen' && code === 'EADDRINUSE') return `${where} is in use; set PORT`;
  if (syscall === 'listen' && code === 'EACCES') return `${where} needs privileges this user does not have; set PORT`;
  if (syscall === 'listen' && code === 'EADDRNOTAVAIL') return `${config.host} is no address of this machine; set HOST`;
  if (code === 'ENOTFOUND' && hostname === config.host) return `HOST ${config.host} is unknown; set HOST`;
  const reason = databaseFailure(error, config);
  return error instanceof EmbeddedPostgresError ? reason : `could not start: ${reason}`;
}

/** Runs `work` on DATABASE_URL, or on the embedded server (reused, and left running, when one runs). */
async function onDatabase<T>(config: Config, logger: Logger, work: (url: string) => Promise<T>): Promise<T> {
  if (config.databaseUrl !== undefined) return work(config.databaseUrl);
  const embedded = await startEmbeddedDatabase(config.dataDir, logger);
  try {
    return await work(embedded.url);
  } finally {
    // Stops only a server this command started: a reused one serves whoever started it.
    await embedded.server.stop();
  }
}

const program = new Command('secventory').description(
  'An inventory reservation engine that is never wrong about stock.',
);

program
  .command('serve')
  .description('Serve the REST API (on an embedded PostgreSQL unless DATABASE_URL is set)')
  .action(async () => {
    const config = configOrExit();
    const logger = pino({ level: config.logLevel });
    // A stray rejection or error must not take the service down with every actor's memory: the
    // database holds the truth, and the engine already answered the callers involved.
    process.on('unhandledRejection', (reason) =>
      logger.fatal({ err: reason }, 'unhandled rejection; the service keeps running'),
    );
    let app: App;
    try {
      app = await startApp({ config, logger });
    } catch (error) {
      // startApp has stopped what it started; the details are for LOG_LEVEL=debug.
      logger.debug({ err: error }, 'start failed');
      exitWith(1, startFailure(error, config));
    }
    // Unhandled rejections are logged above, not a reason to stop; anything else stops gracefully.
    // app.stop() is bounded below shutdownMsMax; the delay is the backstop that ends the process.
    closeWithGrace(
      {
        delay: shutdownMsMax,
        skip: ['unhandledRejection'],
        onTimeout: (delayMs) => logger.error({ delayMs }, 'stopping took too long; exiting'),
      },
      async ({ signal, err }) => {
        if (err) logger.error({ err }, 'stopping after an error');
        logger.info({ signal }, 'stopping: draining HTTP, then actors, pool and PostgreSQL');
        await app.stop();
        logger.info('stopped');
      },
    );
  });

program
  .command('migrate')
  .description('Apply pending migrations and exit')
  .action(async () => {
    const config = configOrExit();
    const logger = pino({ level: config.logLevel });
    try {
      const applied = await onDatabase(config, logger, (url) =>
        migrate(url, { info: (m) => logger.debug(m), warn: (m) => logger.warn(m), error: (m) => logger.error(m) }),
      );
      logger.info({ applied }, applied.length === 0 ? 'nothing to migrate' : 'migrations applied');
    } catch (error) {
      logger.debug({ err: error }, 'migrate failed');
      exitWith(1, `migrate: ${databaseFailure(error, config)}`);
    }
    // Explicitly: a PostgreSQL killed from outside may leave processes holding this one's pipes.
    process.exit(0);
  });

program
  .command('verify')
  .description(
    'Check G1-G4 and G7 on the database, live or not: exit 0 when all hold, 1 on any violation, 2 when the database cannot be read',
  )
  .action(async () => {
    const config = configOrExit();
    // Logs go to stderr, so stdout holds the report alone.
    const logger = pino({ level: config.logLevel }, pino.destination(2));
    let code: number;
    try {
      const report = await onDatabase(config, logger, (url) =>
        verifyDatabase(url, { onProgress: (line) => process.stderr.write(`secventory verify: ${line}\n`) }),
      );
      process.stdout.write(`${formatVerifyReport(report)}\n`);
      code = report.ok ? 0 : 1;
    } catch (error) {
      // Not a finding: nothing was verified, and a script must not read it as "violations found".
      logger.debug({ err: error }, 'verify could not read the database');
      process.stderr.write(`secventory verify: could not read the database: ${databaseFailure(error, config)}\n`);
      process.exit(2);
    }
    process.exit(code);
  });

await program.parseAsync(process.argv);
