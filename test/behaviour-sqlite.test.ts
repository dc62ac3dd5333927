import { behaviourSuite } from './suites/behaviour.js';
import { sqliteStore } from './helpers/stores.js';

behaviourSuite(sqliteStore);
