import { sqliteStore } from './helpers/stores.js';
import { retentionSuite } from './suites/retention.js';

retentionSuite(sqliteStore);
