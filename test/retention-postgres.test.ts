import { postgresStore } from './helpers/stores.js';
import { retentionSuite } from './suites/retention.js';

retentionSuite(postgresStore);
