/** Samples of a Prometheus text exposition, keyed by name and labels in a fixed (sorted) order. */
export class PrometheusSamples {
  private readonly samples = new Map<string, number>();
  readonly names = new Set<string>();

  constructor(text: string) {
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
      if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
      const [, name, labelText, value] = match;
      const labels: Record<string, string> = {};
      for (const [, key, v] of (labelText ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
        labels[key!] = v!;
      this.names.add(name!);
      this.samples.set(keyOf(name!, labels), Number(value));
    }
  }

  /** The sample's value; throws when the series is not exposed, so a typo cannot read as 0. */
  value(name: string, labels: Record<string, string> = {}): number {
    const value = this.samples.get(keyOf(name, labels));
    if (value === undefined) throw new Error(`no sample ${keyOf(name, labels)}`);
    return value;
  }

  /** Cumulative bucket counts of a histogram, by upper bound (seconds), +Inf last. */
  buckets(name: string, labels: Record<string, string> = {}): { le: number; count: number }[] {
    const out: { le: number; count: number }[] = [];
    for (const [key, count] of this.samples) {
      const parsed = /^(.*)\{(.*)\}$/.exec(key);
      if (parsed === null || parsed[1] !== `${name}_bucket`) continue;
      const labelsOf = Object.fromEntries(
        parsed[2]!
          .split(',')
          .filter(Boolean)
          .map((kv) => kv.split('=') as [string, string]),
      );
      const le = labelsOf.le;
      delete labelsOf.le;
      if (
        le === undefined ||
        Object.entries(labels).some(([k, v]) => labelsOf[k] !== v) ||
        Object.keys(labelsOf).length !== Object.keys(labels).length
      )
        continue;
      out.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count });
    }
    return out.sort((a, b) => a.le - b.le);
  }
}

function keyOf(name: string, labels: Record<string, string>): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(',')}}`;
}
