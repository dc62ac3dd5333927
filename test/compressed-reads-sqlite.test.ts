import { sqliteStore } from './helpers/stores.js';
import { compressedReadsSuite } from './suites/compressed-reads.js';

compressedReadsSuite(sqliteStore);
