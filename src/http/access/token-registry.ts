import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Logger } from '../../logger.js';
import { parseTokenFile, TokenFileError, type FileToken, type Grant } from './token-file.js';

/** How often the file's modification time is looked at; a poll, so an editor's rename-over-it is seen too. */
const WATCH_INTERVAL_MS = 500;

/** Reads and parses the tokens file. Throws TokenFileError, naming the file (and the line when it is malformed). */
export function readTokenFile(path: string): FileToken[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new TokenFileError(`${path}: cannot be read: ${(error as Error).message}`);
  }
  return parseTokenFile(text, path);
}

/**
 * The tokens of AUTH_TOKENS_FILE in force. Re-read on reload() (SIGHUP) and when the file changes; a file
 * that cannot be read or parsed is refused, logged with its line, and the tokens in force stay.
 */
export class TokenRegistry {
  private tokens: FileToken[];

  constructor(private readonly path: string, private readonly log: Logger) {
    this.tokens = readTokenFile(path);
    log.info({ file: path, tokens: this.names() }, 'access tokens loaded');
  }

  /**
   * The grant of a presented token, or undefined. Its digest is compared with every token's, each with
   * timingSafeEqual and none skipped, so the time taken tells nothing of which digest came close.
   */
  find(presented: string): Grant | undefined {
    if (presented === '') return undefined;
    const digest = createHash('sha256').update(presented, 'utf8').digest();
    let found: Grant | undefined;
    for (const token of this.tokens) {
      if (timingSafeEqual(digest, token.digest)) found = token.grant;
    }
    return found;
  }

  /** Reads the file again; returns whether its tokens are now in force. */
  reload(reason: string): boolean {
    try {
      this.tokens = readTokenFile(this.path);
    } catch (error) {
      if (!(error instanceof TokenFileError)) throw error;
      this.log.error({ file: this.path, reason }, `access tokens not reloaded, the previous ones stay in force: ${error.message}`);
      return false;
    }
    this.log.info({ file: this.path, reason, tokens: this.names() }, 'access tokens reloaded');
    return true;
  }

  /** Reloads whenever the file's modification time or size changes, until close(). */
  watch(): void {
    watchFile(this.path, { interval: WATCH_INTERVAL_MS, persistent: false }, this.onFileChange);
  }

  close(): void {
    unwatchFile(this.path, this.onFileChange);
  }

  private readonly onFileChange = (now: Stats, before: Stats): void => {
    if (now.mtimeMs !== before.mtimeMs || now.size !== before.size || now.ino !== before.ino) this.reload('the file changed');
  };

  private names(): string[] {
    return this.tokens.map((token) => token.grant.name);
  }
}
