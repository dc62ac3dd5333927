import { topicPattern } from './retention.js';

/**
 * The topics an access token may publish to or read: topic patterns in RETENTION's syntax (`*` matches any
 * run of characters), matched by the same matcher.
 */
export class TopicScope {
  private readonly matchers: readonly RegExp[];

  constructor(readonly patterns: readonly string[]) {
    this.matchers = patterns.map(topicPattern);
  }

  /** True when a pattern is `*`: nothing needs filtering. */
  get everyTopic(): boolean {
    return this.patterns.includes('*');
  }

  allows(topic: string): boolean {
    return this.matchers.some((matcher) => matcher.test(topic));
  }

  /** The first of `topics` outside the scope, or undefined when it allows them all. */
  firstOutside(topics: Iterable<string>): string | undefined {
    if (this.everyTopic) return undefined;
    for (const topic of topics) if (!this.allows(topic)) return topic;
    return undefined;
  }

  /** The patterns a store read filters on; undefined when the scope is every topic (no filter). */
  get filter(): readonly string[] | undefined {
    return this.everyTopic ? undefined : this.patterns;
  }
}

/**
 * A predicate for a pattern list that arrives as JSON text (the SQLite reader's SQL function gets it so for
 * each row): compiled once per distinct list, a few lists kept.
 */
export function cachedMatcher(maxLists = 64): (patternsJson: string, topic: string) => boolean {
  const compiled = new Map<string, TopicScope>();
  return (patternsJson, topic) => {
    let scope = compiled.get(patternsJson);
    if (!scope) {
      if (compiled.size >= maxLists) compiled.clear();
      scope = new TopicScope(JSON.parse(patternsJson) as string[]);
      compiled.set(patternsJson, scope);
    }
    return scope.allows(topic);
  };
}

/** The patterns as PostgreSQL regular expressions (`topic ~ ANY(...)`): the same anchored expressions, which ARE reads alike. */
export const postgresPatterns = (patterns: readonly string[]): string[] => patterns.map((pattern) => topicPattern(pattern).source);
