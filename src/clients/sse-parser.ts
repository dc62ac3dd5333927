/** One Server-Sent Events message: its `id:`, `event:` (default "message") and joined `data:` lines. */
export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/**
 * An incremental parser of the text/event-stream format (WHATWG HTML, "Server-sent events"): feed it text
 * as it arrives, in chunks of any size; it returns the messages completed by that chunk. Comments (`:`
 * lines) are skipped, `retry:` is kept for the reconnect delay, and `id:` persists across messages as the
 * spec's "last event ID".
 */
export class SseParser {
  private pending = '';
  private data: string[] = [];
  private event = '';
  /** The id of the latest `id:` line: the spec's last event ID, which the next message carries. */
  private lastEventId: string | undefined;
  /** The reconnect delay the server asked for, in ms. */
  retryMs: number | undefined;

  /** `onComment` sees each comment line (keep-alives), without its colon. */
  constructor(private readonly onComment: (text: string) => void = () => {}) {}

  feed(chunk: string): SseMessage[] {
    let text = this.pending + chunk;
    // A chunk may end inside a line, or between the \r and \n of one line break: keep that for the next.
    const heldCr = text.endsWith('\r');
    if (heldCr) text = text.slice(0, -1);
    const lines = text.split(/\r\n|\r|\n/);
    this.pending = lines.pop()! + (heldCr ? '\r' : '');
    const messages: SseMessage[] = [];
    for (const line of lines) {
      if (line === '') {
        if (this.data.length > 0) messages.push({ id: this.lastEventId, event: this.event || 'message', data: this.data.join('\n') });
        this.data = [];
        this.event = '';
        continue;
      }
      if (line.startsWith(':')) {
        this.onComment(line.slice(1).trim());
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') this.data.push(value);
      else if (field === 'event') this.event = value;
      else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
      else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Number(value);
    }
    return messages;
  }
}
