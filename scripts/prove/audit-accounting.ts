import type { AuditEvent } from './audit-trail.ts';
import type { Answer } from '../lib/api-client.ts';
import { keyOf, scopeOf, type Attempted } from '../lib/request-accounting.ts';
import type { LogLine } from './server-log.ts';

/** Where the trace of one request is: a log line, an audit event, or nowhere. */
export type Account =
  | { readonly by: 'log'; readonly line: LogLine; readonly alsoCommitted: AuditEvent | undefined }
  | { readonly by: 'event'; readonly event: AuditEvent }
  | { readonly by: 'replay'; readonly event: AuditEvent }
  | { readonly by: 'none'; readonly why: string };

export interface AccountedAnswer {
  readonly attempted: Attempted;
  readonly answer: Answer;
  readonly account: Account;
}

/**
 * The server's failure log indexed by request id. Two forms reach it: the engine's
 * 'command not acknowledged' (requestId) and the route's 'storage unavailable' for a
 * storage error met outside a command (Fastify's reqId).
 */
export function failureLinesByRequestId(lines: readonly LogLine[]): Map<string, LogLine> {
  const byId = new Map<string, LogLine>();
  for (const line of lines) {
    const id = line.fields.requestId ?? line.fields.reqId;
    if (typeof id === 'string' && line.level >= 40 && line.fields.code !== undefined) byId.set(id, line);
    else if (typeof id === 'string' && line.msg === 'storage unavailable') byId.set(id, line);
  }
  return byId;
}

/**
 * Accounts for every answer of a scenario: a 503 by a failure log line naming its request id and
 * key; an executed 2xx or 4xx by the audit event carrying its request id; a replay by the event
 * of its key's first execution. A request accounted by nothing would be a hole in the audit.
 */
export function accountFor(
  attempted: readonly Attempted[],
  events: readonly AuditEvent[],
  failureLines: Map<string, LogLine>,
): AccountedAnswer[] {
  const byRequestId = new Map<string, AuditEvent>();
  const effectByKey = new Map<string, AuditEvent>();
  for (const e of events) {
    if (e.requestId !== undefined) byRequestId.set(e.requestId, e);
    if (e.idempotencyKey !== undefined && e.type !== 'rejected') effectByKey.set(`${e.sku} ${e.idempotencyKey}`, e);
  }
  return attempted.flatMap((entry) =>
    entry.answers.map((answer): AccountedAnswer => {
      const key = keyOf(entry.op);
      let account: Account;
      if (answer.status === null) {
        account = { by: 'none', why: `no HTTP answer: ${String(answer.body)}` };
      } else if (answer.status >= 500) {
        const line = failureLines.get(answer.requestId);
        const matches =
          line !== undefined &&
          line.fields.code === answer.body?.code &&
          (key === null || line.fields.idempotencyKey === key || line.fields.reqId !== undefined);
        account = matches
          ? { by: 'log', line, alsoCommitted: byRequestId.get(answer.requestId) }
          : { by: 'none', why: `no failure log line for request ${answer.requestId}` };
      } else if (answer.replayed) {
        const first = key === null ? undefined : effectByKey.get(`${scopeOf(entry.op)} ${key}`);
        const ofThisOperation = first !== undefined && entry.answers.some((a) => a.requestId === first.requestId);
        account = ofThisOperation
          ? { by: 'replay', event: first }
          : { by: 'none', why: `replayed, but no effect event of key ${key} from this operation's requests` };
      } else {
        const event = byRequestId.get(answer.requestId);
        account =
          event !== undefined
            ? { by: 'event', event }
            : { by: 'none', why: `no audit event with request id ${answer.requestId}` };
      }
      return { attempted: entry, answer, account };
    }),
  );
}
