/*
 * Whether JSON.parse kept everything a JSON text says. It silently rounds number literals to doubles
 * (12345678901234567890, 1e400 -> Infinity, -0 -> 0) and keeps only the last of duplicate keys; a payload
 * stored after that would not read back as the value its publisher sent. Key order is not a loss: JSON
 * objects are unordered (RFC 8259), and JavaScript lists integer-like keys first.
 */

/** Where in the parsed value: object keys and array indexes from the root. */
export type JsonPath = (string | number)[];

export interface JsonLoss {
  path: JsonPath;
  reason: string;
  /** For a number that did not survive: its literal, so a reader that must keep it exactly can. */
  literal?: string;
}

/**
 * What parsing `text` into `value` lost, at most `max` losses. `text` must be the valid JSON text `value`
 * was parsed from. Cheap when nothing can have been lost: text that is exactly JSON.stringify(value)
 * (what a JavaScript publisher sends) has no literal that did not survive; only other text is scanned.
 */
export function jsonLosses(value: unknown, text: string, max = 100): JsonLoss[] {
  try {
    if (JSON.stringify(value) === text) return [];
  } catch {
    // Nested too deep for the recursive stringify: the iterative scan decides.
  }
  return scan(text, max);
}

/** A number literal reads back as itself iff its decimal value is that of the double it parses to. */
export function numberLoss(literal: string): string | undefined {
  const parsed = Number(literal);
  if (!Number.isFinite(parsed)) return `${clip(literal)} overflows a double`;
  const shortest = String(parsed);
  if (shortest === literal || decimal(literal) === decimal(shortest)) return undefined;
  return `${clip(literal)} is not exactly a double: it would read back as ${shortest}`;
}

/** A number's decimal value, normalized: "-0.123e4" for -1230, "0" and "-0" for the zeros. */
function decimal(literal: string): string {
  const negative = literal.startsWith('-');
  const body = negative ? literal.slice(1) : literal;
  const e = body.search(/[eE]/);
  const mantissa = e < 0 ? body : body.slice(0, e);
  const point = mantissa.indexOf('.');
  const whole = point < 0 ? mantissa : mantissa.slice(0, point);
  const digits = point < 0 ? whole : whole + mantissa.slice(point + 1);
  const significant = digits.replace(/^0+/, '');
  if (significant === '') return negative ? '-0' : '0';
  // value = 0.<significant without trailing zeros> x 10^exponent
  const exponent = (e < 0 ? 0 : Number(body.slice(e + 1))) + whole.length - (digits.length - significant.length);
  return `${negative ? '-' : ''}0.${significant.replace(/0+$/, '')}e${exponent}`;
}

const clip = (text: string): string => (text.length > 40 ? `${text.slice(0, 40)}…` : text);

interface Frame {
  /** The keys seen so far in an object; undefined for an array. */
  keys: Set<string> | undefined;
  /** The current key of an object, the current index of an array. */
  at: string | number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The losses of valid JSON text, found by walking its tokens: strings, numbers, keys and nesting. */
function scan(text: string, max: number): JsonLoss[] {
  const losses: JsonLoss[] = [];
  const stack: Frame[] = [];
  const path = (): JsonPath => stack.map((frame) => frame.at);
  let expectKey = false;
  for (let i = 0; i < text.length && losses.length < max; ) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = endOfString(text, i);
      const frame = stack[stack.length - 1];
      if (expectKey && frame?.keys) {
        const raw = text.slice(i + 1, end - 1);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, end)) as string) : raw;
        frame.at = key;
        if (frame.keys.has(key)) losses.push({ path: path(), reason: `the key ${JSON.stringify(clip(key))} appears more than once` });
        frame.keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < text.length && isNumberChar(text.charCodeAt(end))) end++;
      const literal = text.slice(i, end);
      const loss = numberLoss(literal);
      if (loss !== undefined) losses.push({ path: path(), reason: loss, literal });
      i = end;
    } else {
      if (c === 0x7b) {
        stack.push({ keys: new Set(), at: '' });
        expectKey = true;
      } else if (c === 0x5b) {
        stack.push({ keys: undefined, at: 0 });
      } else if (c === 0x7d || c === 0x5d) {
        stack.pop();
        expectKey = false;
      } else if (c === 0x2c) {
        const frame = stack[stack.length - 1]!;
        if (frame.keys) expectKey = true;
        else frame.at = (frame.at as number) + 1;
      }
      i++;
    }
  }
  return losses;
}

/** The index just past the string literal that opens at `start`: the next quote not escaped by a backslash. */
function endOfString(text: string, start: number): number {
  for (let quote = text.indexOf('"', start + 1); ; quote = text.indexOf('"', quote + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
  }
}

/** Digits, sign, decimal point and exponent: what can follow the first character of a number. */
const isNumberChar = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
