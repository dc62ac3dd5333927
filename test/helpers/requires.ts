import type { Test } from 'tap';

/**
 * Whether something a test needs from the machine is there. CI provides all of it (.ci/run), so there a
 * missing one fails the test; on a developer's machine the test is skipped, saying what is missing.
 */
export function requires(t: Test, present: boolean, what: string): boolean {
  if (present) return true;
  if (process.env.CI) t.fail(`CI provides ${what} for this test`);
  else t.plan(0, `needs ${what}`);
  return false;
}
