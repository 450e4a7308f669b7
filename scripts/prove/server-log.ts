/** One line the server wrote: pino's JSON when it parses, else the raw text (level -1). */
export interface LogLine {
  /** Which server process wrote it ('app #1', 'app #2'). */
  readonly server: string;
  readonly receivedAtMs: number;
  readonly level: number;
  readonly msg: string;
  readonly fields: Readonly<Record<string, unknown>>;
  readonly raw: string;
}

/** pino's numeric levels, for the report. */
export const levelName: Readonly<Record<number, string>> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
  [-1]: 'text',
};

/**
 * Every line the proof's server processes logged, kept so the report can show that the log and the
 * audit trail together account for every request. Bounded: a runaway logger must not exhaust the
 * proof's memory, and past the bound the loss is counted and reported rather than silent.
 */
export class LogBook {
  private readonly lines: LogLine[] = [];
  dropped = 0;

  constructor(private readonly linesMax = 200_000) {}

  add(server: string, raw: string): void {
    if (raw.trim() === '') return;
    if (this.lines.length >= this.linesMax) {
      this.dropped++;
      return;
    }
    let fields: Record<string, unknown> = {};
    let level = -1;
    let msg = raw;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed === 'object' && parsed !== null) {
        fields = parsed as Record<string, unknown>;
        level = typeof fields.level === 'number' ? fields.level : -1;
        msg = typeof fields.msg === 'string' ? fields.msg : '';
      }
    } catch {
      // Not JSON (a crash trace on stderr): kept as text, so it still reaches the report.
    }
    this.lines.push({ server, receivedAtMs: Date.now(), level, msg, fields, raw });
  }

  all(): readonly LogLine[] {
    return this.lines;
  }

  between(fromMs: number, toMs: number): LogLine[] {
    return this.lines.filter((l) => l.receivedAtMs >= fromMs && l.receivedAtMs <= toMs);
  }
}

/** A log line shortened for the report: pino's bookkeeping fields (pid, hostname) left out. */
export function excerptOf(line: LogLine): string {
  if (line.level === -1) return `[${line.server}] ${line.raw}`;
  const { pid: _pid, hostname: _hostname, ...rest } = line.fields;
  return `[${line.server}] ${JSON.stringify(rest)}`;
}
