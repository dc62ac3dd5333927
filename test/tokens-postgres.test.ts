import { postgresStore } from './helpers/stores.js';
import { tokensSuite } from './suites/tokens.js';

tokensSuite(postgresStore);
