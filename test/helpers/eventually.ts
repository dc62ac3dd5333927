export interface EventuallyOptions<T> {
  /** What is waited for, as the error at the deadline names it ("the consumer to come back"). */
  what: string;
  timeout: number;
  interval?: number;
  /** When the probed value is the one waited for; by default, when it is truthy. */
  until?: (value: T) => boolean;
}

const describe = (value: unknown): string => {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
};

/**
 * Calls `probe` every `interval` ms until its value passes `until`, and resolves with that value. At the
 * deadline it throws, naming what it waited for and the last value seen, so a wait never fails quietly
 * into a later, less telling assertion. A probe that throws counts as "not yet", its error as the value.
 */
export async function eventually<T>(probe: () => T | Promise<T>, options: EventuallyOptions<T>): Promise<T> {
  const { what, timeout, interval = 20, until = (value: T) => Boolean(value) } = options;
  const deadline = Date.now() + timeout;
  for (;;) {
    let last: unknown;
    try {
      const value = await probe();
      if (until(value)) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}; last seen: ${describe(last)}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
