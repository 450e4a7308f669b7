// Every bound of the service (engine, API, storage) and of `secventory verify`, each with its
// reason, reviewed in one place. Values that operators may tune are defaults for the
// configuration in src/config.ts.

/** docs/API.md: stock and stock totals are 0..2,147,483,647 (a PostgreSQL integer). */
export const stockMax = 2_147_483_647;
/** docs/API.md: a reservation takes 1..1,000,000 units. */
export const quantityMax = 1_000_000;
/** docs/API.md: a reservation lives 1 s .. 24 h; 10 minutes when the client does not say. */
export const ttlSecondsMin = 1;
export const ttlSecondsMax = 86_400;
/**
 * How long a reservation may live however often it is extended: 24 h after its creation. Stock
 * held without end is stock nobody can sell; a checkout that needs longer starts a new one.
 */
export const reservationLifetimeMaxSeconds = 86_400;
/**
 * Lines in one cart. Every line holds its product's actor for the cart's commit: a cart of many
 * lines stalls many products at once, and a checkout rarely needs more.
 */
export const cartLinesMax = 100;
/**
 * Cart operations decided and committed together by the cart lane: one transaction, one WAL flush
 * for all of them. A larger batch holds its products' actors and rows longer, and every cart in
 * it waits for the whole batch; 1,000 carts of 3 lines commit in a few tens of milliseconds.
 */
export const cartBatchSizeMax = 1024;
/**
 * Lines in one batch of the cart lane, whatever the size of its carts (up to cartLinesMax each):
 * bounds the statement's arrays and the number of actors a batch holds.
 */
export const cartBatchLinesMax = 4096;
/**
 * Cart operations waiting for the cart lane. Past this, new ones are refused with `overloaded`
 * before any work: at a few thousand carts per second this is a few seconds of waiting.
 */
export const cartsWaitingMax = 10_000;
/**
 * Batches of carts in flight at once in one hold of the cart lane. With two, while one commits the
 * next is decided on top of it and its statement built, then sent as soon as the first returns (as
 * an actor pipelines its batches; each is guarded by the chain heads it was decided against, so one
 * decided on top of a batch that fails cannot commit). One by default: on the 2-core development
 * machine, where the engine and PostgreSQL share the cores, one measured as many carts/s as two or
 * more (README, Performance): overlapping buys no core there, and a larger batch costs the database
 * less per cart (one product row per product per batch). Two should pay where the database has cores
 * of its own. A registry setting (RegistrySettings), so the tests run both.
 */
export const cartBatchesInFlightMaxDefault = 1;
/**
 * Version conflicts of a whole batch of carts (another instance wrote to one of its products)
 * before its carts are decided and committed one by one: a batch over many products meets other
 * writers more often than one cart does, and must not keep losing to them.
 */
export const cartBatchConflictsMax = 2;
export const ttlSecondsDefault = 600;
/** docs/API.md: SKU alphabet and length. */
export const skuPattern = '^[A-Za-z0-9._:-]{1,64}$';
export const skuLengthMax = 64;
export const nameLengthMax = 200;
export const reasonLengthMax = 200;
/** docs/API.md: 1-255 printable ASCII characters. */
export const idempotencyKeyPattern = /^[\x20-\x7E]{1,255}$/;
/** The same bound as idempotencyKeyPattern, for the OpenAPI document. */
export const idempotencyKeyLengthMax = 255;
/** Client request ids are echoed; longer or non-printable ones are replaced by our own. */
export const requestIdPattern = /^[\x21-\x7E]{1,128}$/;

/** docs/API.md: request bodies at most 16 KiB. No valid body comes near it. */
export const bodyBytesMax = 16 * 1024;
/**
 * Items of one bulk call (POST /products/bulk, POST /stock-adjustments/bulk). A call is a handful
 * of statements however many items it holds, so large calls import fast; an atomic call holds all
 * of its products' actors until its one commit, so it must stay small enough to commit in
 * milliseconds, and a call's answer and its idempotency record (one result per item) stay a few
 * hundred kilobytes.
 */
export const bulkItemsMax = 1_000;
/**
 * The bulk routes' bodies, and only theirs (every other route keeps bodyBytesMax). The largest
 * bulkItemsMax items written in ASCII - a 64-character SKU, a 200-character name or reason, a
 * 10-digit number, the JSON around them - take about 310 KB. Longer non-ASCII names, or ones
 * written with escapes, need a smaller call.
 */
export const bulkBodyBytesMax = 320 * 1024;
/** docs/API.md: event pages hold 1..1000 events, 100 by default. */
export const eventPageLimitMax = 1000;
export const eventPageLimitDefault = 100;
/** Per-actor view: a bounded page, busiest first. */
export const actorsPageLimitMax = 1000;
/** A page of /actors when the client names no limit: a screenful, busiest first. */
export const actorsPageLimitDefault = 50;

/**
 * One batch is one transaction: a larger batch holds the product row's lock longer and makes
 * every caller in it wait for the slowest decision. 512 commands commit in a few milliseconds.
 */
export const batchSizeMaxDefault = 512;
/**
 * Batches of one product in flight at once. The next batch is decided and sent while the
 * database works on the previous one; it waits for that one's row lock and commits right after
 * it, so the database and the engine work at the same time instead of taking turns. Each batch
 * is guarded by the version and chain head it was decided against (migration 0003), so a batch
 * decided on top of one that fails cannot commit. Two are enough to overlap the two sides.
 */
export const batchesInFlightMax = 2;
/**
 * Past this many waiting commands a product refuses new ones with `overloaded` before doing any
 * work: at ~20 batches/s of 512, 10,000 queued commands are about one second of waiting.
 */
export const mailboxLengthMaxDefault = 10_000;
/**
 * Live actors per shard. An idle actor costs about a kilobyte plus its active reservations;
 * 16 shards x 8192 bounds live actors at 131,072.
 */
export const shardCount = 16;
export const liveActorsPerShardMaxDefault = 8192;
/** An actor with nothing to do for this long is passivated (its memory released). */
export const actorIdleMsDefault = 30_000;
export const passivationIntervalMs = 5_000;
/**
 * A version conflict means another writer got there first; each retry reloads the product.
 * Past this many in one batch, the batch fails with storage_unavailable (safe to retry).
 */
export const conflictRetriesMax = 5;

/** The sweeper asks for due reservations this often, and takes at most this many per query. */
export const sweepIntervalMsDefault = 1_000;
export const sweepBatchSizeMax = 5_000;
/** Rounds per sweep tick, so a huge backlog cannot starve everything else. */
export const sweepRoundsPerTickMax = 10;
/** docs/API.md: idempotency records are kept at least 24 hours. */
export const idempotencyRetentionMs = 24 * 60 * 60 * 1000;
export const idempotencyCleanupBatchMax = 10_000;

/** PostgreSQL pool: the batch model needs few connections (one per busy product at a time). */
export const poolSizeDefault = 16;
/** Waiting longer than this for a pooled connection means the database is in trouble. */
export const connectionAcquireTimeoutMsDefault = 3_000;
/** No statement may run longer; a batch commit takes milliseconds. */
export const statementTimeoutMsDefault = 5_000;
/** The client gives up on a query this long after sending it (a frozen server never answers). */
export const queryTimeoutMsDefault = 6_000;
export const idleInTransactionTimeoutMs = 10_000;

// A DATABASE_URL naming several hosts (libpq's form, src/persistence/multi-host.ts): the service
// finds the primary among them and follows it when it moves (src/persistence/primary-locator.ts).

/** Hosts one DATABASE_URL may name: every search for the primary probes each of them. */
export const databaseHostsMax = 16;
/**
 * Each host gets this long to accept a connection, and as long again to say whether it takes
 * writes. A healthy server answers in milliseconds; one that does not answer within 2 s (frozen, or behind a dead
 * link) is passed over in this round, so it cannot hold up finding the one that does.
 */
export const primaryProbeMsMax = 2_000;
/**
 * The pause between two rounds over the hosts when none of them was the primary: 100 ms, doubling
 * up to 1 s. A failover takes seconds; polling faster would only add connections to the servers.
 */
export const primaryLocatePauseMsMin = 100;
export const primaryLocatePauseMsMax = 1_000;
/**
 * Rounds of one search: about a minute at the longest pause. A search that finds no primary gives
 * up and says so in the log; the next query that fails the same way starts another, so a longer
 * outage is survived without a search that never ends. At start, no primary within one search
 * fails the start.
 */
export const primaryLocateRoundsMax = 60;
/** Products whose batches share one statement at most: bounds the statement's size and time. */
export const groupProductsMax = 256;
/**
 * Group statements in flight at once. A few keep the database busy while the next group forms;
 * the rest of the pool stays free for loads, reads and the sweeper.
 */
export const groupsInFlightMax = 4;

/** HTTP: a request that takes longer than this is answered 503 by the server. */
export const requestTimeoutMs = 15_000;
export const keepAliveTimeoutMs = 5_000;
export const retryAfterSeconds = 1;
/**
 * Load shedding: an event loop late by more than this means requests already wait too long;
 * new ones are refused (503 overloaded) until it recovers. Bursts of thousands of requests
 * legitimately delay it by a few hundred milliseconds.
 */
export const eventLoopDelayMsMax = 2_000;
/** The heap past which new requests are refused rather than risking an out-of-memory crash. */
export const heapUsedBytesMax = 1536 * 1024 * 1024;

// The event stream (GET /events/stream): live readers of the whole log, each a long-lived HTTP answer.

/**
 * Open streams per instance; past it, 503 overloaded. A stream holds a socket and, when its client
 * reads slowly, up to eventStreamBufferBytes plus one page of messages (about 200 KB): 1,000 slow
 * readers stay within 200 MB, far below heapUsedBytesMax.
 */
export const eventStreamsMaxDefault = 1_000;
/**
 * How often an instance asks the database for newly committed events while at least one stream is
 * open. Events committed by any instance reach every stream within about this long (plus the time
 * the transactions before them take to finish); one indexed query per interval costs the database
 * nothing next to the commits. docs/API.md promises arrival within one second.
 */
export const eventStreamPollIntervalMs = 150;
/**
 * A comment line is sent after this long without data: proxies close connections idle for 60 s
 * (nginx's proxy_read_timeout) or less, and EventSource clients cannot tell a silent log from a
 * dead connection otherwise.
 */
export const eventStreamHeartbeatMsDefault = 15_000;
/**
 * The `retry:` sent to EventSource clients: how long they wait before reconnecting after a
 * stream ends (shutdown, a database outage, a dropped connection). Sooner gains little over the
 * poll interval and lets many clients hammer an instance that is starting.
 */
export const eventStreamRetryMs = 1_000;
/**
 * Events per page a stream reads and writes at once (from memory or the database). One page is
 * one write to the socket: a slow reader holds at most one page beyond eventStreamBufferBytes.
 */
export const eventStreamPageLimit = 200;
/**
 * Bytes of messages a stream buffers before it waits for its socket to drain; the next page is
 * read only then, so a reader that stops reading costs this much and one page, never more.
 */
export const eventStreamBufferBytes = 16 * 1024;
/**
 * The newest events an instance keeps in memory, each with its message text, so that streams at
 * the head of the log (the usual case) read from memory instead of one query each: 8,192 events
 * are about one second of the hot load and a few megabytes. A stream further behind reads the
 * database until it catches up.
 */
export const eventStreamWindowEventsMax = 8_192;
/**
 * Pages of the window kept encoded: streams at the same position (all those following the head,
 * usually) write the same bytes, so a page is joined and encoded once, not once per stream. A
 * page is about 100 KB; streams at the head share a handful.
 */
export const eventStreamSharedPagesMax = 32;
/** Pages the poller reads in one round; the rest waits for the next round, so one round stays short. */
export const eventStreamPollPagesMax = 8;
/** The poller's page: the largest the event log serves (eventPageLimitMax). */
export const eventStreamPollPageLimit = 1_000;
/**
 * Streams behind the in-memory window read the database this many at a time: the pool is shared
 * with the commits, and a hundred streams replaying the log must not take every connection.
 */
export const eventStreamReadsInFlightMax = 2;
/**
 * On shutdown every stream is ended; one whose client does not take the end within this long
 * (a reader that stopped reading) has its connection closed, so shutdown stays within shutdownMsMax.
 */
export const eventStreamEndGraceMs = 500;

/**
 * Shutdown (SIGTERM, SIGINT) ends the process within this long, whatever state the database is
 * in: a supervisor restarting the service, or an operator at a terminal, must not wait on a
 * database that is gone or frozen. A request still running then is cut off unanswered; its client
 * retries it with the same Idempotency-Key (G2), and its commit is in the database or not, never half.
 */
export const shutdownMsMax = 5_000;
/**
 * The part of shutdownMsMax for draining: HTTP requests in progress, the sweeper, the actors'
 * batches and the pool's connections. A healthy database answers a batch in milliseconds, so
 * only a database in trouble takes this long; what is left then is abandoned.
 */
export const shutdownDrainMsMax = 3_000;
/**
 * The embedded PostgreSQL gets this long for a fast shutdown (a checkpoint, then exit) before it
 * is told to stop at once; crash recovery then replays the WAL at the next start, losing no commit.
 * shutdownDrainMsMax + postgresStopMsMax stays under shutdownMsMax, so it is sent in time.
 */
export const postgresStopMsMax = 1_500;
/**
 * Starting the embedded PostgreSQL: after the app was SIGKILLed, the old server's backends may
 * hold shared memory for a moment, and a server found running may still be in crash recovery.
 */
export const postgresStartMsMax = 20_000;
/** A server found running on the data directory must answer a connection within this long to be reused. */
export const postgresProbeMsMax = 2_000;
/** Lines of the embedded PostgreSQL's output kept in memory, to say why a start failed. */
export const postgresLogLinesKept = 50;

/**
 * The database is asked for the active reservation count at most this often: every scrape and
 * every dashboard refresh would otherwise each run a count over the open reservations.
 */
export const activeReservationsCacheMs = 1_000;
/** The last minute is what /stats and the dashboard show; older seconds live in Prometheus. */
export const windowSeconds = 60;

// `secventory verify` reads one snapshot of the database. Memory is what a piece of products and
// a page of events take, whatever the size of the database.

/** Products per piece: each piece's events are read before the next piece is fetched. */
export const productsPerFetch = 200;
/** A page of events is a few megabytes and a few milliseconds of hashing. */
export const eventsPerPage = 5_000;
/** Reservations per fetch, each with its lifecycle events. */
export const reservationsPerFetch = 2000;
/**
 * The reservation cursor's first fetch sorts and groups the whole history, which takes minutes
 * only on a very large database; past this, reading fails rather than hang.
 */
export const verifyStatementTimeoutMs = 15 * 60_000;
/** How often, at most, a long verify run says how far it got. */
export const progressIntervalMs = 2_000;
/** A broken database can break something on every row; past this many, violations are only counted. */
export const violationsListedMax = 1_000;
