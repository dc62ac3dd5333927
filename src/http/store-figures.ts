import type { Logger } from '../logger.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import { BackgroundRead } from '../lib/background-read.js';
import type { EventReader, TopicDetail } from '../store/store.js';
import type { CommitSignal } from '../stream/commit-signal.js';

/** What /stats shows of the store itself: the listed topics' figures and the size on disk (null: not read yet). */
export interface StoreFigures {
  details: TopicDetail[];
  diskBytes: number | null;
}

/**
 * The store's figures for /stats and /metrics, read in the background (two small reads: the top topics'
 * rows and the files' sizes) at most twice a second while events commit and every 2 s regardless (purges
 * and other replicas change them too): a /stats request never waits for the store or its readers.
 */
export function readStoreFigures(pipeline: Pipeline, reader: EventReader, commits: CommitSignal, log: Logger): BackgroundRead<StoreFigures> {
  const read = async (): Promise<StoreFigures> => {
    const [details, diskBytes] = await Promise.all([reader.topicDetails(pipeline.topTopics().map(([topic]) => topic)), reader.diskBytes()]);
    return { details, diskBytes };
  };
  return new BackgroundRead(read, { details: [], diskBytes: null }, (onChange) => commits.listen(onChange),
    { minMs: 500, maxMs: 2_000, what: 'store figures' }, log);
}
