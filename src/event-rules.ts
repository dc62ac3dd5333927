import { FormatRegistry } from '@sinclair/typebox';

/*
 * The rules of an event's strings, each the check of a schema format (src/event.ts), so that the compiled
 * validator and the reason a 400 gives never disagree.
 */

/*
 * Timestamps: RFC 3339 date-time with a mandatory zone ("Z" or ±hh:mm) that names a real calendar date: the regular
 * expression checks the shape, the rest checks ranges, so 2023-02-30 or 24:00 are refused. Leap seconds
 * (:60) are refused too, as most clocks that publishers use cannot produce them.
 */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

const daysInMonth = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate();

export function isRfc3339DateTime(value: string): boolean {
  const match = RFC3339.exec(value);
  if (!match) return false;
  const [year, month, day, hour, minute, second, offsetHour = 0, offsetMinute = 0] = match.slice(1).map((part) =>
    part === undefined ? undefined : Number(part),
  ) as number[];
  return (
    month! >= 1 && month! <= 12 &&
    day! >= 1 && day! <= daysInMonth(year!, month!) &&
    hour! <= 23 && minute! <= 59 && second! <= 59 &&
    offsetHour <= 23 && offsetMinute <= 59
  );
}

/*
 * Identity strings. Each rule says why a string is refused (or undefined), and the same rule is the
 * schema's format check, so the compiled validator and the 400's reason never disagree. They are
 * formats, not patterns, because TypeBox compiles `pattern` without the `u` flag (no \p{...}).
 */
const LONE_SURROGATE = /\p{Cs}/u;
const CONTROL = /\p{Cc}/u;
/** General Category Cf: bidi controls (U+202E), zero-width characters (U+200B..U+200D, U+2060), U+FEFF, ... */
const FORMAT_CHARACTER = /\p{Cf}/u;

function found(value: string, at: number): string {
  return `U+${value.codePointAt(at)!.toString(16).toUpperCase().padStart(4, '0')} at index ${at}`;
}

/**
 * Well-formed Unicode: an unpaired surrogate cannot be written as UTF-8, so the ring, the stores and the
 * logs would each turn it into U+FFFD and merge distinct ids into one.
 */
function wellFormedProblem(value: string): string | undefined {
  if (value.isWellFormed()) return undefined;
  return `must be well-formed Unicode: ${found(value, value.search(LONE_SURROGATE))} is an unpaired surrogate`;
}

/** A name people read: format characters would make it display as another name in logs and the dashboard. */
function nameProblem(value: string): string | undefined {
  const problem = wellFormedProblem(value);
  if (problem !== undefined) return problem;
  const at = value.search(FORMAT_CHARACTER);
  return at < 0 ? undefined : `must not contain format characters (bidi controls, zero-width): ${found(value, at)}`;
}

/** Why a topic is refused, or undefined; for any place that takes a topic (a query parameter too). */
export function topicProblem(value: string): string | undefined {
  const problem = nameProblem(value);
  if (problem !== undefined) return problem;
  // C0 and C1 control characters (newlines, tabs, escapes) have no place in a name operators read.
  const at = value.search(CONTROL);
  return at < 0 ? undefined : `must not contain control characters: ${found(value, at)}`;
}

/** The string formats of the identity fields, by name: why a value is refused, or undefined. */
export const IDENTITY_FORMATS: Record<string, (value: string) => string | undefined> = {
  'well-formed': wellFormedProblem,
  name: nameProblem,
  topic: topicProblem,
};
/** The same formats as checks: for TypeBox here, and for Fastify's Ajv, so `Topic` works in a querystring too. */
export const IDENTITY_FORMAT_CHECKS = Object.fromEntries(
  Object.entries(IDENTITY_FORMATS).map(([format, problem]) => [format, (value: string) => problem(value) === undefined]),
);
for (const [format, check] of Object.entries(IDENTITY_FORMAT_CHECKS)) FormatRegistry.Set(format, check);
FormatRegistry.Set('date-time', isRfc3339DateTime);
