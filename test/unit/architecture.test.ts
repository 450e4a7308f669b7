import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The arrows of README.md's layout, read from the import statements of every file under src/:
// the API and persistence depend on the engine, never the other way; audit reads through
// persistence; only src/app.ts and src/cli.ts put the parts together. Type-only and dynamic
// imports count like any other: a type import is still a dependency of the reader on the writer.

type Area = 'engine' | 'persistence' | 'api' | 'audit' | 'settings' | 'composition' | 'declarations' | 'outside';

/** Which areas the files of an area may import from. */
const mayImport: Record<Exclude<Area, 'outside'>, readonly Area[]> = {
  engine: ['engine'],
  persistence: ['persistence', 'engine'],
  api: ['api', 'engine'],
  audit: ['audit', 'persistence', 'engine'],
  settings: ['settings', 'engine'],
  composition: ['composition', 'settings', 'api', 'persistence', 'audit', 'engine'],
  declarations: [],
};

/** Packages that would tie the engine, README.md's pure core, to HTTP, SQL or metrics. */
const packagesEngineMustNotImport = [/^fastify$/, /^@fastify\//, /^pg$/, /^prom-client$/];

const root = process.cwd();
const srcDir = path.join(root, 'src');

interface Import {
  /** Importing file, relative to the repository root with forward slashes: `src/api/server.ts`. */
  readonly from: string;
  readonly line: number;
  /** As written: `../persistence/read-model.ts`, `pg`, `node:fs`. */
  readonly specifier: string;
  /** The file it resolves to, relative to the root; null for a package. */
  readonly to: string | null;
}

const relative = (absolute: string) => path.relative(root, absolute).split(path.sep).join('/');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  // preProcessFile lists import and export declarations, dynamic import() and require(), and
  // skips comments and strings.
  return ts.preProcessFile(text, true, true).importedFiles.map((imported) => {
    const specifier = imported.fileName;
    const isPath = specifier.startsWith('.') || specifier.startsWith('/');
    return {
      from: relative(file),
      line: text.slice(0, imported.pos).split('\n').length,
      specifier,
      to: isPath ? relative(path.resolve(path.dirname(file), specifier)) : null,
    };
  });
}

const folderAreas: Record<string, Area> = {
  engine: 'engine',
  persistence: 'persistence',
  api: 'api',
  audit: 'audit',
  types: 'declarations',
};
const topLevelAreas: Record<string, Area> = {
  'app.ts': 'composition',
  'cli.ts': 'composition',
  'config.ts': 'settings',
  'runtime-flags.ts': 'settings',
  // The ordered, bounded shutdown that app.ts composes; it imports nothing of the rooms.
  'shutdown.ts': 'composition',
};

function areaOf(file: string): Area | 'unknown' {
  if (!file.startsWith('src/')) return 'outside';
  const [first, second] = file.slice('src/'.length).split('/');
  return (second === undefined ? topLevelAreas[first!] : folderAreas[first!]) ?? 'unknown';
}

const describeImport = (i: Import) =>
  `${i.from}:${i.line} imports '${i.specifier}'${i.to === null ? '' : ` (${i.to})`}`;

const absoluteFiles = sourceFiles(srcDir).sort();
const files = absoluteFiles.map(relative);
const imports = absoluteFiles.flatMap(importsOf);

/** Imports from files of `area` into areas it may not import from. */
function forbiddenImportsOf(area: Exclude<Area, 'outside'>): string[] {
  return imports
    .filter((i) => areaOf(i.from) === area && i.to !== null)
    .filter((i) => {
      const target = areaOf(i.to!);
      return target === 'unknown' || !mayImport[area].includes(target);
    })
    .map(describeImport);
}

/** Every import cycle among the files under src/, each as `a -> b -> a`. */
function cycles(): string[] {
  const edges = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const i of imports) {
    if (i.to !== null && edges.has(i.to)) edges.get(i.from)!.push(i.to);
  }
  const found: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of edges.get(file)!) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next].join(' -> '));
      else if (state.get(next) === undefined) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (state.get(file) === undefined) visit(file);
  return found;
}

describe('architecture: import directions under src/', () => {
  it('every file under src/ belongs to an area with import rules', () => {
    expect(files.filter((f) => areaOf(f) === 'unknown')).toEqual([]);
  });

  it('the engine imports only the engine', () => {
    expect(forbiddenImportsOf('engine')).toEqual([]);
  });

  it('the engine imports neither fastify nor pg nor prom-client', () => {
    const offending = imports.filter(
      (i) =>
        areaOf(i.from) === 'engine' && i.to === null && packagesEngineMustNotImport.some((p) => p.test(i.specifier)),
    );
    expect(offending.map(describeImport)).toEqual([]);
  });

  it('persistence imports only persistence and the engine', () => {
    expect(forbiddenImportsOf('persistence')).toEqual([]);
  });

  it('the API imports only the API and the engine', () => {
    expect(forbiddenImportsOf('api')).toEqual([]);
  });

  it('audit imports only audit, persistence and the engine', () => {
    expect(forbiddenImportsOf('audit')).toEqual([]);
  });

  it('configuration and runtime flags import only the engine', () => {
    expect(forbiddenImportsOf('settings')).toEqual([]);
  });

  it('type declarations import nothing from src/', () => {
    expect(forbiddenImportsOf('declarations')).toEqual([]);
  });

  it('nothing under src/ imports from test/, scripts/ or anywhere else outside src/', () => {
    const offending = imports.filter((i) => i.to !== null && areaOf(i.to) === 'outside');
    expect(offending.map(describeImport)).toEqual([]);
  });

  it('no file under src/ reaches itself through its imports (no import cycle)', () => {
    expect(cycles()).toEqual([]);
  });
});
