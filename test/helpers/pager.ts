/** A reader following /events with `after=`, as a consumer of /events would: every item it read, in order. */
export interface EventPager {
  seen: any[];
  /** The seq of the last item seen (0 before any). */
  readonly position: number;
  /** Reads the page after the last item seen; resolves to the number of items it held. */
  next(): Promise<number>;
}

export function eventPager(get: (path: string) => Promise<any>, limit: number): EventPager {
  const seen: any[] = [];
  let after = 0;
  return {
    seen,
    get position() {
      return after;
    },
    async next() {
      const page: any[] = await get(`/events?after=${after}&limit=${limit}`);
      seen.push(...page);
      if (page.length > 0) after = page.at(-1).seq;
      return page.length;
    },
  };
}
