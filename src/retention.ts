/*
 * Retention settings: which events' bodies are purged, and for how long a key is remembered.
 *
 * RETENTION is a comma-separated list of `pattern=limit` rules, first match wins. A pattern is a topic
 * name in which `*` matches any run of characters; a limit is an age (`90s`, `15m`, `12h`, `30d`), a count
 * of events per topic (`1000000`), or both (`30d/1000000`). A topic no rule matches keeps its events
 * forever. DEDUP_WINDOW is `forever` or an age: keys received longer ago are forgotten, and their events
 * are purged with them, so a re-send after the window is stored again but never held twice.
 */

/** How long and how many events of a topic are kept; undefined: no limit of that kind. */
export interface RetentionLimit {
  maxAgeMs: number | undefined;
  maxEvents: number | undefined;
}

export interface RetentionRule extends RetentionLimit {
  /** The pattern as written, for logs and /stats. */
  pattern: string;
  matcher: RegExp;
}

export interface RetentionPolicy {
  rules: readonly RetentionRule[];
  /** Keys received longer ago than this are forgotten; undefined: remembered forever. */
  dedupWindowMs: number | undefined;
}

export class RetentionSyntaxError extends Error {
  override name = 'RetentionSyntaxError';
}

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** Longer than any store will run: keeps ages exact integers and dates valid. */
const MAX_AGE_MS = 100 * 365 * 86_400_000;

/** An age such as `90s`, `15m`, `12h` or `30d`, in milliseconds. */
export function parseAge(raw: string, name: string): number {
  const match = /^(\d{1,12})([smhd])$/.exec(raw.trim());
  const ms = match ? Number(match[1]) * UNIT_MS[match[2]!]! : NaN;
  if (!(ms > 0 && ms <= MAX_AGE_MS)) {
    throw new RetentionSyntaxError(`${name}: "${raw}" is not an age: a positive whole number of s, m, h or d, such as 90s, 12h or 30d, up to 100 years`);
  }
  return ms;
}

function parseCount(raw: string, name: string): number {
  const value = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < 1) {
    throw new RetentionSyntaxError(`${name}: "${raw}" is not a count of events: a whole number of at least 1`);
  }
  return value;
}

function parseLimit(raw: string, name: string): RetentionLimit {
  const parts = raw.split('/');
  if (parts.length === 2) return { maxAgeMs: parseAge(parts[0]!, name), maxEvents: parseCount(parts[1]!, name) };
  if (parts.length === 1 && /^\s*\d+\s*$/.test(raw)) return { maxAgeMs: undefined, maxEvents: parseCount(raw, name) };
  if (parts.length === 1) return { maxAgeMs: parseAge(raw, name), maxEvents: undefined };
  throw new RetentionSyntaxError(`${name}: "${raw}" is not a limit: an age (30d), a count (1000000) or both (30d/1000000)`);
}

/** A topic pattern (`*`: any run of characters) as an anchored RegExp; access tokens' patterns use it too. */
export function topicPattern(pattern: string): RegExp {
  const body = pattern.split('*').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${body}$`, 's');
}

/** Parses RETENTION; '' is no rule (keep forever). */
export function parseRetentionRules(raw: string, name = 'RETENTION'): RetentionRule[] {
  if (raw.trim() === '') return [];
  return raw.split(',').map((entry, index) => {
    const at = entry.lastIndexOf('=');
    const where = `${name} rule ${index + 1}`;
    if (at < 0) throw new RetentionSyntaxError(`${where}: "${entry}" is not pattern=limit (for example orders.*=30d)`);
    const pattern = entry.slice(0, at).trim();
    if (pattern === '') throw new RetentionSyntaxError(`${where}: "${entry}" has no topic pattern before "="`);
    if (pattern.length > 255) throw new RetentionSyntaxError(`${where}: the pattern is longer than a topic may be (255)`);
    return { pattern, matcher: topicPattern(pattern), ...parseLimit(entry.slice(at + 1), where) };
  });
}

/** Parses DEDUP_WINDOW: `forever` (undefined) or an age. */
export function parseDedupWindow(raw: string, name = 'DEDUP_WINDOW'): number | undefined {
  return raw.trim().toLowerCase() === 'forever' ? undefined : parseAge(raw, name);
}

/**
 * What is kept of `topic`: the first matching rule, with the dedup window as an age limit too (an event
 * outlives its key never), or undefined when the topic keeps everything forever.
 */
export function limitFor(policy: RetentionPolicy, topic: string): RetentionLimit | undefined {
  const rule = policy.rules.find((r) => r.matcher.test(topic));
  const window = policy.dedupWindowMs;
  if (!rule) return window === undefined ? undefined : { maxAgeMs: window, maxEvents: undefined };
  const maxAgeMs = rule.maxAgeMs === undefined ? window : Math.min(rule.maxAgeMs, window ?? Infinity);
  return { maxAgeMs, maxEvents: rule.maxEvents };
}

/** Whether anything is ever purged under this policy. */
export function purgesAnything(policy: RetentionPolicy): boolean {
  return policy.rules.length > 0 || policy.dedupWindowMs !== undefined;
}
