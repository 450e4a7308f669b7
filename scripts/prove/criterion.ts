import { isDeepStrictEqual } from 'node:util';
import type { VerifyReport } from '../../src/audit/verify-report.ts';
import type { Violation } from '../lib/oracle.ts';
import type { LatencySummary } from './latency.ts';

/** One expectation of a criterion, with what was observed: the report's rows. */
export interface Check {
  readonly what: string;
  readonly expected: string;
  readonly observed: string;
  readonly pass: boolean;
}

export interface Excerpt {
  readonly title: string;
  readonly lines: readonly string[];
}

/** The figures the summary table shows for every criterion. */
export interface Figures {
  requests: number;
  /** 2xx answers. */
  successes: number;
  /** 4xx answers: business-rule refusals (insufficient_stock, reservation_cancelled, ...). */
  rejections: number;
  /** Units sold or reserved beyond stock, over the criterion's products (must be 0). */
  oversells: number;
  latency: LatencySummary | null;
  wallMs: number;
}

export interface VerifySummary {
  readonly ok: boolean;
  readonly products: number;
  readonly events: number;
  readonly reservations: number;
  readonly durationMs: number;
  readonly violations: readonly string[];
}

export interface CriterionResult {
  readonly number: number;
  readonly title: string;
  readonly pass: boolean;
  readonly done: readonly string[];
  readonly expected: readonly string[];
  /** How to read the figures, where they could mislead. */
  readonly notes: readonly string[];
  readonly figures: Figures;
  /** Figures particular to this criterion (connections, time to 503, recovery time, ...). */
  readonly details: Readonly<Record<string, string | number>>;
  readonly checks: readonly Check[];
  readonly excerpts: readonly Excerpt[];
  readonly verify: VerifySummary | null;
  /** Set when the scenario could not run to its end; the criterion then fails. */
  readonly error: string | null;
}

const oracleCheck = 'independent SQL oracle on the whole database (G1-G4, G7)';

const show = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));

/** Collects one criterion's checks and evidence as its scenario runs. */
export class Criterion {
  readonly done: string[] = [];
  readonly expected: string[] = [];
  readonly notes: string[] = [];
  readonly checks: Check[] = [];
  readonly excerpts: Excerpt[] = [];
  readonly details: Record<string, string | number> = {};
  figures: Figures = { requests: 0, successes: 0, rejections: 0, oversells: 0, latency: null, wallMs: 0 };
  verify: VerifySummary | null = null;
  error: string | null = null;

  constructor(
    readonly number: number,
    readonly title: string,
  ) {}

  /** Observed must equal expected (deeply). */
  equal(what: string, expected: unknown, observed: unknown): boolean {
    return this.that(what, show(expected), show(observed), isDeepStrictEqual(expected, observed));
  }

  atMost(what: string, boundInclusive: number, observed: number, unit = ''): boolean {
    return this.that(
      what,
      `<= ${boundInclusive}${unit}`,
      `${Math.round(observed * 10) / 10}${unit}`,
      observed <= boundInclusive,
    );
  }

  atLeast(what: string, bound: number, observed: number, unit = ''): boolean {
    return this.that(what, `>= ${bound}${unit}`, `${Math.round(observed * 10) / 10}${unit}`, observed >= bound);
  }

  that(what: string, expected: string, observed: string, pass: boolean): boolean {
    this.checks.push({ what, expected, observed, pass });
    return pass;
  }

  excerpt(title: string, lines: readonly string[]): void {
    this.excerpts.push({ title, lines });
  }

  verified(report: VerifyReport): void {
    this.verify = summarizeVerify(report);
    this.that(
      'secventory verify on the whole database (G1-G4, G7)',
      'ok, 0 violations',
      `${report.ok ? 'ok' : 'FAILED'}, ${report.violations.length} violations`,
      report.ok,
    );
  }

  /** The tests' oracle (scripts/lib/oracle.ts): the same guarantees in plain SQL, apart from the engine. */
  checkedByOracle(violations: readonly Violation[]): void {
    const [v] = violations;
    const first = v === undefined ? '' : `; first: ${v.guarantee} ${v.sku} ${v.message}`;
    this.that(oracleCheck, '0 violations', `${violations.length} violations${first}`, violations.length === 0);
  }

  oracleFailed(error: unknown): void {
    this.that(oracleCheck, '0 violations', `could not run: ${String(error)}`, false);
  }

  result(): CriterionResult {
    const pass = this.error === null && this.checks.length > 0 && this.checks.every((c) => c.pass);
    return {
      number: this.number,
      title: this.title,
      pass,
      done: this.done,
      expected: this.expected,
      notes: this.notes,
      figures: this.figures,
      details: this.details,
      checks: this.checks,
      excerpts: this.excerpts,
      verify: this.verify,
      error: this.error,
    };
  }
}

export function summarizeVerify(report: VerifyReport): VerifySummary {
  return {
    ok: report.ok,
    products: report.products,
    events: report.events,
    reservations: report.reservations,
    durationMs: report.durationMs,
    violations: report.violations.slice(0, 10).map((v) => `${v.guarantee} ${v.sku ?? ''} ${v.message}`),
  };
}
