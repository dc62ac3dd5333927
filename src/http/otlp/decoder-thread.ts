import { parentPort, workerData } from 'node:worker_threads';
import { decodeExport, type DecodeRequest, type DecodeResult, type DecoderSettings } from './decode-export.js';

/*
 * The OTLP decoder: turns export bodies into events off the HTTP thread, so a hostile body (millions of
 * attributes in 8 MiB of protobuf take seconds to decode) stalls only this thread, never the publishers.
 * One body at a time, in the order they came.
 */

const settings = workerData as DecoderSettings;
const port = parentPort!;
port.on('message', (request: DecodeRequest) => {
  let result: DecodeResult;
  try {
    result = decodeExport(request, settings);
  } catch (error) {
    // A defect, not the client's doing: the HTTP side logs it and answers 500.
    result = { id: request.id, ok: false, code: 'INTERNAL', message: (error as Error).stack ?? String(error) };
  }
  port.postMessage(result);
});
