import { sqliteStore } from './helpers/stores.js';
import { streamSuite } from './suites/stream.js';

streamSuite(sqliteStore);
