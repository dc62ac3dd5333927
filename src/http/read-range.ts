import { receivedAtText } from '../stream/time-range.js';
import { ApiError } from './errors.js';

/** A read's time range as received_at text (README, "Time ranges"); each end absent when not asked for. */
export interface ReadRange {
  since: string | undefined;
  until: string | undefined;
}

/** `since` and `until` of a query (valid RFC 3339 times: the schema checked them); 400 INVALID_QUERY when since lies after until. */
export function readRange(query: { since?: string | undefined; until?: string | undefined }): ReadRange {
  const { since, until } = query;
  if (since !== undefined && until !== undefined && Date.parse(since) > Date.parse(until)) {
    throw new ApiError('INVALID_QUERY', `since (${since}) lies after until (${until})`);
  }
  return { since: since === undefined ? undefined : receivedAtText(since), until: until === undefined ? undefined : receivedAtText(until) };
}
