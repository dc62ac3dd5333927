/** The client library: `import { Publisher, subscribe, consume } from 'pubsub-aggregator/client'`. */
export type { PublishedEvent } from '../event.js';
export { consume, DurableConsumer, type ConsumeOptions, type ConsumerPage } from './consumer.js';
export { AggregatorError, PublishError, type EventProblem } from './errors.js';
export { Publisher, type PublisherOptions, type PublisherStats } from './publisher.js';
export { subscribe, type StoredEvent, type StreamMessage, type SubscribeOptions } from './subscriber.js';
