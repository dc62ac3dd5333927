import { behaviourSuite } from './suites/behaviour.js';
import { postgresStore } from './helpers/stores.js';

behaviourSuite(postgresStore);
