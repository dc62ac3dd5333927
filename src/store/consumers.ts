/*
 * Durable consumers: named, server-side cursors over the log, stored beside the events so that any replica
 * of a shared store serves them. The writer applies commands (create, commit, delete) in small
 * transactions of their own; readers look consumers up and page their events.
 */

/** Where a new consumer starts: before the first event, at the last one visible now, or after a given seq. */
export type ConsumerStart = 'earliest' | 'latest' | number;

export interface ConsumerDefinition {
  /** The topics it reads, sorted and without repeats; null reads every topic. */
  topics: string[] | null;
  start: ConsumerStart;
}

export interface ConsumerRecord extends ConsumerDefinition {
  name: string;
  /** The name of the access token that created it (AUTH_TOKENS_FILE); null: created without one. */
  owner: string | null;
  /** The committed position: every matching event with a seq up to it is acknowledged. */
  position: number;
  createdAt: string;
  lastCommitAt: string | null;
}

/** A consumer with what it has not yet consumed. */
export interface ConsumerStatus extends ConsumerRecord {
  /** Matching events after the committed position. */
  lag: number;
  /** received_at of the first of them; null when there are none. */
  oldestUnconsumedAt: string | null;
}

/**
 * The access token a command comes with (AUTH_TOKENS_FILE): a new consumer belongs to its name, and a
 * non-admin token may act only on its own. Absent: no tokens file, anyone may act on any consumer.
 */
export interface ConsumerActor {
  token: string;
  admin: boolean;
}

export type ConsumerCommand = { actor?: ConsumerActor | undefined } & (
  | { kind: 'create'; name: string; definition: ConsumerDefinition; maxConsumers: number }
  | { kind: 'commit'; name: string; seq: number; rewind: boolean }
  | { kind: 'delete'; name: string });

/** Why a command was refused; each is an error code of the HTTP API. */
export type ConsumerRefusal =
  'UNKNOWN_CONSUMER' | 'CONSUMER_CONFLICT' | 'CONSUMER_LIMIT' | 'COMMIT_BACKWARDS' | 'COMMIT_BEYOND_END' | 'CONSUMER_FORBIDDEN';

export type ConsumerOutcome =
  /** The consumer as it is now, or (deleted) as it was. */
  | { kind: 'created' | 'exists' | 'committed' | 'deleted'; consumer: ConsumerRecord }
  | { kind: 'refused'; refusal: ConsumerRefusal; message: string };

/** One page of a consumer's events: a JSON array's bytes, and the position that acknowledges all of them. */
export interface ConsumerPage {
  events: Uint8Array;
  count: number;
  /** The last seq in the page; the committed position when the page is empty. */
  next: number;
  /** The consumer's topics (null: every topic), read with the page: a long-poll waits for commits of these. */
  topics: string[] | null;
}

/** The same definition: a PUT of it again is answered 200, another one 409. */
export function sameDefinition(a: ConsumerDefinition, b: ConsumerDefinition): boolean {
  return a.start === b.start && JSON.stringify(a.topics) === JSON.stringify(b.topics);
}

/** Topics as stored: sorted, no repeats, null for "every topic". */
export function normalizeTopics(topics: readonly string[] | undefined): string[] | null {
  return topics === undefined || topics.length === 0 ? null : [...new Set(topics)].sort();
}

/** The refusal of a commit, or undefined when it may move the position from `position` to `seq`. */
export function refuseCommit(
  name: string, position: number, seq: number, rewind: boolean, lastSeq: number,
): ConsumerOutcome | undefined {
  if (seq < position && !rewind) {
    return { kind: 'refused', refusal: 'COMMIT_BACKWARDS', message: `consumer ${name} is at ${position}; moving it back to ${seq} needs ?rewind=true` };
  }
  if (seq > position && seq > lastSeq) {
    return { kind: 'refused', refusal: 'COMMIT_BEYOND_END', message: `seq ${seq} is beyond the last event ever stored (${lastSeq})` };
  }
  return undefined;
}

/** Whether `actor` may use a consumer owned by `owner`: its own, or any when admin or when no tokens are in use. */
export const mayUseConsumer = (actor: ConsumerActor | undefined, owner: string | null): boolean =>
  actor === undefined || actor.admin || actor.token === owner;

/** The refusal of a command on another token's consumer, or undefined when the actor may act on it. */
export function refuseActor(existing: ConsumerRecord | undefined, command: ConsumerCommand): ConsumerOutcome | undefined {
  if (!existing || mayUseConsumer(command.actor, existing.owner)) return undefined;
  return { kind: 'refused', refusal: 'CONSUMER_FORBIDDEN', message: `consumer ${command.name} belongs to another token` };
}

export const unknownConsumer = (name: string): ConsumerOutcome =>
  ({ kind: 'refused', refusal: 'UNKNOWN_CONSUMER', message: `no consumer named ${name}` });

export const consumerLimit = (max: number): ConsumerOutcome =>
  ({ kind: 'refused', refusal: 'CONSUMER_LIMIT', message: `there are already ${max} consumers, the most allowed (MAX_CONSUMERS)` });

export const conflictingConsumer = (name: string): ConsumerOutcome =>
  ({ kind: 'refused', refusal: 'CONSUMER_CONFLICT', message: `consumer ${name} exists with another definition; delete it first` });

/** The start as stored in a text column. */
export const startText = (start: ConsumerStart): string => String(start);
export const parseStart = (text: string): ConsumerStart => (text === 'earliest' || text === 'latest' ? text : Number(text));
