import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import ts from 'typescript';

// The folders show the pipeline (http → pipeline → ring, the writer in workers/ → store), and a reader
// follows an event by following imports. That only holds while imports point one way: this test is the
// layering, enforced by `npm test` rather than remembered. A rule `[from, to]` forbids any file under
// `from` to import a file under `to`.
const FORBIDDEN: readonly (readonly [string, string])[] = [
  ...['src/http', 'src/pipeline', 'src/store', 'src/stream', 'workers'].map((to) => ['src/ring', to] as const),
  ...['src/http', 'src/pipeline', 'src/stream', 'src/ring', 'workers'].map((to) => ['src/store', to] as const),
  ...['src/http', 'src/stream', 'workers'].map((to) => ['src/pipeline', to] as const),
  ...['src/http', 'src/pipeline', 'workers'].map((to) => ['src/stream', to] as const),
  ...['src/http', 'src/stream'].map((to) => ['workers', to] as const),
  // Generic helpers know nothing of the product around them.
  ...['src/http', 'src/pipeline', 'src/ring', 'src/store', 'src/stream', 'workers'].map((to) => ['src/lib', to] as const),
  ['src/store/sqlite', 'src/store/postgres'],
  ['src/store/postgres', 'src/store/sqlite'],
  // The client library is what publishers embed: it must not drag the server in.
  ...['src/clients', 'src/publisher', 'src/subscriber'].flatMap((from) =>
    ['src/http', 'src/store', 'src/pipeline', 'src/ring', 'src/stream'].map((to) => [from, to] as const),
  ),
  ...['test', 'perf', 'workers'].map((to) => ['src', to] as const),
  ['perf', 'test'],
];

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function sources(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sources(path, out);
    else if (path.endsWith('.ts') && !path.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** The repo files a source file imports (relative specifiers only; `.js` in a specifier names the `.ts`). */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(join(ROOT, file), 'utf8'), true, true);
  return importedFiles
    .map(({ fileName }) => fileName)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => normalize(join(dirname(file), spec)).replace(/\.js$/, '.ts'))
    .filter((target) => existsSync(join(ROOT, target)));
}

const under = (file: string, folder: string) => file === folder || file.startsWith(`${folder}/`);

/** Strongly connected components of more than one file (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do component.push((w = stack.pop()!));
    while (w !== v);
    if (component.length > 1) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

const graph = new Map(['src', 'workers', 'perf', 'scripts', 'test'].flatMap((dir) => sources(dir)).map((f) => [f, importsOf(f)]));

t.test('no import cycles', async (t) => {
  t.ok(graph.size > 50, `read the import graph (${graph.size} files)`);
  t.same(cycles(graph), []);
});

t.test('no import breaks the layering', async (t) => {
  const broken = [...graph].flatMap(([file, targets]) =>
    FORBIDDEN.filter(([from]) => under(file, from)).flatMap(([from, to]) =>
      targets.filter((target) => under(target, to)).map((target) => `${relative('.', file)} → ${target} (${from} may not import ${to})`),
    ),
  );
  t.same(broken, []);
});
