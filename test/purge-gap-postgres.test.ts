import { postgresGapStore } from './helpers/gap-store.js';
import { streamGapSuite } from './suites/stream-gaps.js';

/*
 * The stream's gap events over a real PostgreSQL store and its purge; the SQLite-only cases (exact seqs,
 * a server that purges nothing) are in purge-gap-sqlite.test.ts.
 */
streamGapSuite(postgresGapStore);
