import { Command } from 'commander';
import closeWithGrace from 'close-with-grace';
import { pino } from 'pino';
import { startApp, startEmbeddedDatabase } from './app.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { migrate } from './persistence/migrate.ts';
import { verifyDatabase } from './audit/verify-database.ts';
import { formatVerifyReport } from './audit/format-report.ts';

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`secventory: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}

const program = new Command('secventory').description('An inventory reservation engine that is never wrong about stock.');

program.command('serve').description('Serve the REST API (on an embedded PostgreSQL unless DATABASE_URL is set)').action(async () => {
  const config = configOrExit();
  const logger = pino({ level: config.logLevel });
  // A stray rejection or error must not take the service down with every actor's memory: the
  // database holds the truth, and the engine already answered the callers involved.
  process.on('unhandledRejection', (reason) => logger.fatal({ err: reason }, 'unhandled rejection; the service keeps running'));
  const app = await startApp({ config, logger });
  // Unhandled rejections are logged above, not a reason to stop; anything else stops gracefully.
  closeWithGrace({ delay: 20_000, skip: ['unhandledRejection'] }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'stopping after an error');
    logger.info({ signal }, 'stopping: draining HTTP, then actors, pool and PostgreSQL');
    await app.stop();
    logger.info('stopped');
  });
});

program.command('migrate').description('Apply pending migrations and exit').action(async () => {
  const config = configOrExit();
  const logger = pino({ level: config.logLevel });
  let url = config.databaseUrl;
  const embedded = url === undefined ? await startEmbeddedDatabase(config.dataDir, logger) : undefined;
  url ??= embedded!.url;
  try {
    const applied = await migrate(url, { info: (m) => logger.debug(m), warn: (m) => logger.warn(m), error: (m) => logger.error(m) });
    logger.info({ applied }, applied.length === 0 ? 'nothing to migrate' : 'migrations applied');
  } finally {
    await embedded?.server.stop();
  }
});

program.command('verify')
  .description('Check G1-G4 and G7 on the database, live or not: exit 0 when all hold, 1 on any violation, 2 when the database cannot be read')
  .action(async () => {
    const config = configOrExit();
    // Logs go to stderr, so stdout holds the report alone.
    const logger = pino({ level: config.logLevel }, pino.destination(2));
    let url = config.databaseUrl;
    const embedded = url === undefined ? await startEmbeddedDatabase(config.dataDir, logger) : undefined;
    url ??= embedded!.url;
    try {
      const report = await verifyDatabase(url, { onProgress: (line) => process.stderr.write(`secventory verify: ${line}\n`) });
      process.stdout.write(`${formatVerifyReport(report)}\n`);
      process.exitCode = report.ok ? 0 : 1;
    } catch (error) {
      // Not a finding: nothing was verified, and a script must not read it as "violations found".
      process.stderr.write(`secventory verify: could not read the database: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 2;
    } finally {
      await embedded?.server.stop();
    }
  });

await program.parseAsync(process.argv);
