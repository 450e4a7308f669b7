import path from 'node:path';
import envSchema from 'env-schema';
import { Type, type Static } from 'typebox';
import * as limits from './engine/limits.ts';

const ConfigSchema = Type.Object({
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  HOST: Type.String({ default: '127.0.0.1', minLength: 1 }),
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535 }),
  LOG_LEVEL: Type.Unsafe<string>({
    type: 'string',
    enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    default: 'info',
  }),
  SECVENTORY_DATA_DIR: Type.String({ default: '.secventory', minLength: 1 }),
  SECVENTORY_SWEEP_INTERVAL_MS: Type.Integer({
    default: limits.sweepIntervalMsDefault,
    minimum: 10,
    maximum: 3_600_000,
  }),
  SECVENTORY_BATCH_SIZE_MAX: Type.Integer({ default: limits.batchSizeMaxDefault, minimum: 1, maximum: 10_000 }),
  SECVENTORY_MAILBOX_LENGTH_MAX: Type.Integer({
    default: limits.mailboxLengthMaxDefault,
    minimum: 1,
    maximum: 1_000_000,
  }),
  SECVENTORY_LIVE_ACTORS_PER_SHARD_MAX: Type.Integer({
    default: limits.liveActorsPerShardMaxDefault,
    minimum: 1,
    maximum: 1_000_000,
  }),
  SECVENTORY_ACTOR_IDLE_MS: Type.Integer({ default: limits.actorIdleMsDefault, minimum: 100, maximum: 86_400_000 }),
  SECVENTORY_POOL_SIZE: Type.Integer({ default: limits.poolSizeDefault, minimum: 1, maximum: 1000 }),
  SECVENTORY_CONNECTION_TIMEOUT_MS: Type.Integer({
    default: limits.connectionAcquireTimeoutMsDefault,
    minimum: 100,
    maximum: 600_000,
  }),
  SECVENTORY_STATEMENT_TIMEOUT_MS: Type.Integer({
    default: limits.statementTimeoutMsDefault,
    minimum: 100,
    maximum: 600_000,
  }),
  SECVENTORY_QUERY_TIMEOUT_MS: Type.Integer({ default: limits.queryTimeoutMsDefault, minimum: 100, maximum: 600_000 }),
  SECVENTORY_EVENT_STREAMS_MAX: Type.Integer({ default: limits.eventStreamsMaxDefault, minimum: 1, maximum: 100_000 }),
  SECVENTORY_EVENT_STREAM_HEARTBEAT_MS: Type.Integer({
    default: limits.eventStreamHeartbeatMsDefault,
    minimum: 100,
    maximum: 3_600_000,
  }),
});

type Env = Static<typeof ConfigSchema>;

export interface Config {
  readonly databaseUrl: string | undefined;
  readonly host: string;
  readonly port: number;
  readonly logLevel: string;
  readonly dataDir: string;
  readonly sweepIntervalMs: number;
  readonly batchSizeMax: number;
  readonly mailboxLengthMax: number;
  readonly liveActorsPerShardMax: number;
  readonly actorIdleMs: number;
  readonly poolSize: number;
  readonly connectionAcquireTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly queryTimeoutMs: number;
  readonly eventStreamsMax: number;
  readonly eventStreamHeartbeatMs: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Reads and validates the configuration; throws ConfigError naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  let e: Env;
  try {
    // An empty variable counts as unset (e.g. `DATABASE_URL= npm start` for the embedded default).
    const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
    e = envSchema<Env>({ schema: ConfigSchema, data: [set], env: false, dotenv: false });
  } catch (error) {
    throw new ConfigError(`invalid configuration: ${(error as Error).message}`);
  }
  return {
    databaseUrl: e.DATABASE_URL,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    dataDir: path.resolve(e.SECVENTORY_DATA_DIR),
    sweepIntervalMs: e.SECVENTORY_SWEEP_INTERVAL_MS,
    batchSizeMax: e.SECVENTORY_BATCH_SIZE_MAX,
    mailboxLengthMax: e.SECVENTORY_MAILBOX_LENGTH_MAX,
    liveActorsPerShardMax: e.SECVENTORY_LIVE_ACTORS_PER_SHARD_MAX,
    actorIdleMs: e.SECVENTORY_ACTOR_IDLE_MS,
    poolSize: e.SECVENTORY_POOL_SIZE,
    connectionAcquireTimeoutMs: e.SECVENTORY_CONNECTION_TIMEOUT_MS,
    statementTimeoutMs: e.SECVENTORY_STATEMENT_TIMEOUT_MS,
    queryTimeoutMs: e.SECVENTORY_QUERY_TIMEOUT_MS,
    eventStreamsMax: e.SECVENTORY_EVENT_STREAMS_MAX,
    eventStreamHeartbeatMs: e.SECVENTORY_EVENT_STREAM_HEARTBEAT_MS,
  };
}
