import { violationsListedMax } from '../engine/limits.ts';
import type { VerifyReport, Violation } from './verify-report.ts';

/** docs/DESIGN.md's names, so a reader of the report need not look them up. */
const guaranteeNames: Record<string, string> = {
  G1: 'no overselling',
  G2: 'no double deduction',
  G3: 'no negative stock',
  G4: 'atomic',
  G5: 'durable acknowledgements',
  G6: 'reconciliation',
  G7: 'auditability',
};

function line(v: Violation): string {
  const name = guaranteeNames[v.guarantee];
  const where = v.sku === null ? 'database' : `product ${v.sku}`;
  const reservation = v.reservationId === undefined ? '' : `, reservation ${v.reservationId}`;
  return `  ${v.guarantee}${name === undefined ? '' : ` (${name})`} ${where}${reservation}: ${v.message}`;
}

/** The report `secventory verify` prints: a summary line, then every listed violation. */
export function formatVerifyReport(report: VerifyReport): string {
  const seconds = (report.durationMs / 1000).toFixed(1);
  const lines = [
    `checked ${report.products} products, ${report.events} events and ${report.reservations} reservations in ${seconds} s`,
  ];
  if (report.ok) {
    lines.push(
      'OK: G1, G2, G3, G4 and G7 hold: counters, reservations, event replay, hash chains, lifecycles ' +
        'and the lines of every reservation agree',
    );
    return lines.join('\n');
  }
  const more =
    report.violations.length >= violationsListedMax ? ` (only the first ${violationsListedMax} are listed)` : '';
  lines.push(`FAILED: ${report.violations.length} violation${report.violations.length === 1 ? '' : 's'}${more}`);
  // Grouped by product, so one product's findings read together.
  const sorted = [...report.violations].sort(
    (a, b) => (a.sku ?? '').localeCompare(b.sku ?? '') || a.guarantee.localeCompare(b.guarantee),
  );
  for (const v of sorted) lines.push(line(v));
  return lines.join('\n');
}
