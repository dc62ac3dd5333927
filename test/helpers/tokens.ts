import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { clientOver, parseBody, type TestClient } from './client.js';

/** One token of a test's AUTH_TOKENS_FILE: its secret in clear, and the rights the file gives it. */
export interface TestToken {
  name: string;
  secret: string;
  publish?: string[];
  read?: string[];
  admin?: boolean;
}

export const sha256Hex = (secret: string): string => createHash('sha256').update(secret, 'utf8').digest('hex');

/** The file's text, as an operator writes it: one token a line, hashes only. */
export function tokenFileText(tokens: readonly TestToken[]): string {
  const lines = tokens.map(({ secret, ...rights }) => `  ${JSON.stringify({ ...rights, sha256: sha256Hex(secret) })}`);
  return `{"tokens": [\n${lines.join(',\n')}\n]}\n`;
}

export function writeTokenFile(path: string, tokens: readonly TestToken[]): void {
  writeFileSync(path, tokenFileText(tokens));
}

/** A client of a real server at `url` sending `Authorization` (undefined: none). */
export function clientWith(url: string, authorization: string | undefined): TestClient {
  return clientOver(async (method, path, body) => {
    const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, body: parseBody(res.headers.get('content-type'), await res.text()), headers: Object.fromEntries(res.headers) };
  });
}

export const bearer = (secret: string): string => `Bearer ${secret}`;

/**
 * Whether `topic` matches a pattern in which `*` is any run of characters: the test's own model, written
 * independently of the server's matcher.
 */
export function globMatches(pattern: string, topic: string): boolean {
  const parts = pattern.split('*');
  if (parts.length === 1) return pattern === topic;
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (topic.length < first.length + last.length || !topic.startsWith(first) || !topic.endsWith(last)) return false;
  let at = first.length;
  const end = topic.length - last.length;
  for (const middle of parts.slice(1, -1)) {
    const found = topic.indexOf(middle, at);
    if (found < 0 || found + middle.length > end) return false;
    at = found + middle.length;
  }
  return true;
}
