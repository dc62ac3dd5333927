import { sqliteStore } from './helpers/stores.js';
import { otlpSdkSuite } from './suites/otlp-sdk.js';

otlpSdkSuite(sqliteStore);
