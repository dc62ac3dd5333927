import { Type, type Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { TopicScope } from '../../topic-scope.js';

/*
 * AUTH_TOKENS_FILE: the access tokens, each stored as the SHA-256 (hex) of its UTF-8 bytes, never in clear,
 * with the topics it may publish to and read, or `admin` (README, "Access control").
 */

const Patterns = Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { description: 'Topic patterns, `*`: any run of characters' });

const TokenSchema = Type.Object({
  // Names go into logs and metric labels: a short, plain charset.
  name: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' }),
  sha256: Type.String({ pattern: '^[0-9a-fA-F]{64}$' }),
  publish: Type.Optional(Patterns),
  read: Type.Optional(Patterns),
  admin: Type.Optional(Type.Boolean()),
}, { additionalProperties: false });

const TokenFileSchema = Type.Object({ tokens: Type.Array(TokenSchema) }, { additionalProperties: false });
const checkFile = TypeCompiler.Compile(TokenFileSchema);

/** What a token may do: `admin` everything; otherwise publish to and read the topics of its scopes. */
export interface Grant {
  name: string;
  admin: boolean;
  publish: TopicScope;
  read: TopicScope;
}

export interface FileToken {
  /** The SHA-256 digest of the token. */
  digest: Buffer;
  grant: Grant;
}

/** A file that is missing, unreadable or malformed; the message names the file and, when known, the line. */
export class TokenFileError extends Error {
  override name = 'TokenFileError';
}

const EVERY_TOPIC = new TopicScope(['*']);

/** Parses the text of a tokens file; `file` names it in errors. Throws TokenFileError. */
export function parseTokenFile(text: string, file: string): FileToken[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new TokenFileError(`${file}: line ${syntaxErrorLine(text, (error as Error).message)}: not JSON: ${(error as Error).message}`);
  }
  const problem = checkFile.Errors(parsed).First();
  if (problem) {
    throw new TokenFileError(`${file}: line ${lineOf(text, problem.path)}: ${problem.path || '(file)'} ${problem.message.replace(/^Expected/, 'expected')}`);
  }
  const { tokens } = parsed as Static<typeof TokenFileSchema>;
  const seenNames = new Set<string>();
  const seenDigests = new Set<string>();
  return tokens.map((token, index) => {
    const digest = token.sha256.toLowerCase();
    const duplicate = seenNames.has(token.name) ? `the name ${token.name}` : seenDigests.has(digest) ? 'the sha256' : undefined;
    if (duplicate) throw new TokenFileError(`${file}: line ${lineOf(text, `/tokens/${index}`)}: token ${index} repeats ${duplicate} of an earlier one`);
    seenNames.add(token.name);
    seenDigests.add(digest);
    const admin = token.admin === true;
    return {
      digest: Buffer.from(digest, 'hex'),
      grant: {
        name: token.name,
        admin,
        publish: admin ? EVERY_TOPIC : new TopicScope(token.publish ?? []),
        read: admin ? EVERY_TOPIC : new TopicScope(token.read ?? []),
      },
    };
  });
}

/** The line of a JSON.parse error: V8 reports the offset ("at position N"); without one, the end of the text. */
function syntaxErrorLine(text: string, message: string): number {
  const position = /at position (\d+)/.exec(message);
  return lineAt(text, position ? Number(position[1]) : text.length);
}

const lineAt = (text: string, offset: number): number => text.slice(0, offset).split('\n').length;

/**
 * The line a problem at a JSON pointer is on: that of the token it is in (`/tokens/<i>/...`), else line 1.
 * JSON.parse gives no positions (Node 20), so the token entries are found by a scan that follows strings and
 * nesting: entry i starts at the i-th value inside the "tokens" array. Only called for a file that parsed
 * and whose top level is an object holding nothing but that array.
 */
function lineOf(text: string, pointer: string): number {
  const index = /^\/tokens\/(\d+)/.exec(pointer);
  if (!index) return 1;
  const starts = entryStarts(text);
  return lineAt(text, starts[Number(index[1])] ?? 0);
}

function entryStarts(text: string): number[] {
  const starts: number[] = [];
  let depth = 0;
  let inString = false;
  let expectEntry = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (expectEntry && !/\s/.test(c)) {
      if (c !== ']') starts.push(i);
      expectEntry = false;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      depth++;
      // The "tokens" array is the only container directly inside the top-level object.
      if (depth === 2 && c === '[') expectEntry = true;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 2) expectEntry = true;
  }
  return starts;
}
