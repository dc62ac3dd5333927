import { Type } from '@sinclair/typebox';
import { EventSchema } from '../../event.js';
import { PageLimit, Seq, Topic } from './primitives.js';

/** Tells a reader that retention purged events after its cursor (README, "API at a glance"). */
export const PURGED_THROUGH_HEADER = 'X-Purged-Through';

/** One /events item. The stores build it (src/store/event-doc.ts); a test holds their real pages to this. */
export const StoredEventSchema = Type.Object({
  seq: Type.Integer({ description: 'Commit sequence number, strictly increasing' }),
  ...EventSchema.properties,
  received_at: Type.String({ format: 'date-time', description: 'When the aggregator accepted the request' }),
}, { additionalProperties: false });

export const EventsQuerySchema = Type.Object(
  {
    topic: Type.Optional(Topic),
    after: Seq({ default: 0, description: 'Return events with seq greater than this' }),
    limit: PageLimit,
  },
  { additionalProperties: false },
);

export const EventsPageSchema = Type.Array(StoredEventSchema, {
  headers: {
    [PURGED_THROUGH_HEADER]: Type.Integer({
      description: 'Present only when events of this query\'s topics after `after` were purged by retention: every '
        + 'purged seq is at or below this one. The page starts from the oldest event retained after `after`.',
    }),
  },
});
