/** An event as a publisher sends it, after validation. */
export interface PublishedEvent {
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: Record<string, unknown>;
}

/** An accepted event on its way to the store: the payload already serialized, the arrival time stamped. */
export interface IncomingEvent {
  topic: string;
  eventId: string;
  timestamp: string;
  source: string;
  /** The payload as JSON text, exactly as it will be stored. */
  payload: string;
  /** ISO 8601 time at which the aggregator accepted the request. */
  receivedAt: string;
}
