import type { IncomingEvent } from '../event.js';
import type { RecordSpan, RingProducer } from './ring.js';

/*
 * One ring record per event: u32 request id, then six fields, each a u32 byte length and UTF-8 bytes,
 * in the order of FIELDS. The request id lets the writer report back which publish requests a commit
 * made durable; 0 means nobody waits for this event (?ack=queued).
 */
const FIELDS = ['topic', 'eventId', 'timestamp', 'source', 'payload', 'receivedAt'] as const;
const FIXED_BYTES = 4 + FIELDS.length * 4;

/** The request id of events nobody waits for (?ack=queued); PendingAcks never hands it out. */
export const NOBODY_WAITS = 0;

export interface QueuedEvent extends IncomingEvent {
  requestId: number;
}

/** Bytes the record body of `event` takes. */
export function encodedLength(event: IncomingEvent): number {
  let length = FIXED_BYTES;
  for (const field of FIELDS) length += Buffer.byteLength(event[field]);
  return length;
}

/**
 * Reserves room for `event` inside the producer's open transaction and writes it.
 * Returns false when the ring is full.
 */
export function writeEvent(producer: RingProducer, requestId: number, event: IncomingEvent, length: number): boolean {
  const data = producer.data;
  let offset = producer.reserve(length);
  if (offset < 0) return false;
  data.writeUInt32LE(requestId, offset);
  offset += 4;
  for (const field of FIELDS) {
    const written = data.write(event[field], offset + 4, 'utf8');
    data.writeUInt32LE(written, offset);
    offset += 4 + written;
  }
  return true;
}

export function readEvent(data: Buffer, span: RecordSpan): QueuedEvent {
  let offset = span.start + 4;
  const field = (): string => {
    const length = data.readUInt32LE(offset);
    const start = offset + 4;
    offset = start + length;
    return data.toString('utf8', start, offset);
  };
  return {
    requestId: data.readUInt32LE(span.start),
    topic: field(),
    eventId: field(),
    timestamp: field(),
    source: field(),
    payload: field(),
    receivedAt: field(),
  };
}
