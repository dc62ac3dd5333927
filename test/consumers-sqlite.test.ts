import { sqliteStore } from './helpers/stores.js';
import { consumersSuite } from './suites/consumers.js';

consumersSuite(sqliteStore);
