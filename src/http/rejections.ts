/** Requests refused before they reached the pipeline; nothing of them is stored or counted as received. */
export interface RejectionCounters {
  invalid: number;
}
