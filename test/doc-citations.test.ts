import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

// The docs send readers to files by name; a rename that forgets them leaves a reader lost. Every file a
// document cites (a `path/like.ts` in backticks, or a relative markdown link) must exist in the repo.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', 'data']);
const CITED = /`([\w./-]+\.(?:ts|js|sh|md|json|yml|svg|png|html))`|\]\((?!https?:|#)([^)#\s]+)/g;

function walk(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP_DIRS.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else out.push(relative(ROOT, path));
  }
  return out;
}

const files = walk(ROOT);
const basenames = new Set(files.map((f) => basename(f)));
const documents = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** A bare name (`kill9.test.ts`) may live anywhere; a path is relative to the root or to the document. */
function exists(document: string, cited: string): boolean {
  if (!cited.includes('/')) return basenames.has(cited);
  return existsSync(join(ROOT, cited)) || existsSync(join(ROOT, dirname(document), cited));
}

for (const document of documents) {
  t.test(document, async (t) => {
    const text = readFileSync(join(ROOT, document), 'utf8');
    const missing = [...text.matchAll(CITED)]
      .map((m) => m[1] ?? m[2] ?? '')
      // Generated at run time or by the build, not in the repository.
      .filter((cited) => !cited.startsWith('dist/') && !cited.startsWith('perf/results/'))
      .filter((cited) => !exists(document, cited));
    t.same([...new Set(missing)], [], `every file ${document} cites exists`);
  });
}
