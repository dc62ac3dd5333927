import { sqliteStore } from './helpers/stores.js';
import { tokensSuite } from './suites/tokens.js';

tokensSuite(sqliteStore);
