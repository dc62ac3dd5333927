import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One structured JSON logger per thread. Pino escapes every string it writes, so topics and event ids
 * with newlines or quotes cannot forge log lines. The shared secret never reaches a log.
 */
export function createLogger(level: string, name: string): Logger {
  return pino({ level, name, base: { pid: process.pid }, redact: ['config.authToken', 'config.authReadToken', 'config.databaseUrl', 'req.headers.authorization'] });
}
