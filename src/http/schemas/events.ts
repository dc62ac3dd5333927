import { Type } from '@sinclair/typebox';
import { EventSchema } from '../../event.js';
import { COMPRESSION_HEADERS, PageLimit, Seq, TimeRangeQuery, Topic } from './primitives.js';

/** Tells a reader that retention purged events after its cursor (README, "API at a glance"). */
export const PURGED_THROUGH_HEADER = 'X-Purged-Through';
/** Tells a reader of a time range where it ends, once an event received after `until` is stored (README, "Time ranges"). */
export const RANGE_END_HEADER = 'X-Range-End';

/** One /events item. The stores build it (src/store/event-doc.ts); a test holds their real pages to this. */
export const StoredEventSchema = Type.Object({
  seq: Type.Integer({ description: 'Commit sequence number, strictly increasing' }),
  ...EventSchema.properties,
  received_at: Type.String({ format: 'date-time', description: 'When the aggregator accepted the request' }),
}, { additionalProperties: false });

export const EventsQuerySchema = Type.Object(
  {
    topic: Type.Optional(Topic),
    after: Type.Optional(Seq({ description: 'Return events with seq greater than this (the last one seen). Absent: 0, or where `since` says' })),
    limit: PageLimit,
    ...TimeRangeQuery,
  },
  { additionalProperties: false },
);

/** The end of an `until` range, as a header of a page read with it. */
export const RangeEndHeader = Type.Integer({
  description: 'With until= only, once an event received after `until` is stored: the range holds no seq above this one. '
    + 'A page that is empty and carries it ends the range.',
});

export const EventsPageSchema = Type.Array(StoredEventSchema, {
  headers: {
    ...COMPRESSION_HEADERS,
    [PURGED_THROUGH_HEADER]: Type.Integer({
      description: 'Present only when events of this query\'s topics after `after` were purged by retention: every '
        + 'purged seq is at or below this one. The page starts from the oldest event retained after `after`.',
    }),
    [RANGE_END_HEADER]: RangeEndHeader,
  },
});
