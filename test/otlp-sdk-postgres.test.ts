import { postgresStore } from './helpers/stores.js';
import { otlpSdkSuite } from './suites/otlp-sdk.js';

otlpSdkSuite(postgresStore);
