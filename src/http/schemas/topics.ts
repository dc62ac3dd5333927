import { Type } from '@sinclair/typebox';
import { PageLimit, Topic } from './primitives.js';

export const TopicsQuerySchema = Type.Object(
  {
    after: Type.Optional(Type.String({ ...Topic, minLength: 0, description: 'Return topics whose name sorts after this (the last one seen); empty: from the first' })),
    limit: PageLimit,
  },
  { additionalProperties: false },
);

const TopicCountSchema = Type.Object({
  topic: Type.String(),
  events: Type.Integer({ description: 'Stored (unique) events of the topic, store-wide' }),
});

export const TopicsPageSchema = Type.Array(TopicCountSchema);
