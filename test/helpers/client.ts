/** An answer as the tests see it, whether it came through Fastify inject or a real HTTP request. */
export interface Reply {
  status: number;
  /** Parsed JSON when the answer is JSON, else the text. */
  body: any;
  headers: Record<string, unknown>;
}

export type Send = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown) => Promise<Reply>;

/** The one shape of test client, for an in-process aggregator and a spawned server alike. */
export interface TestClient {
  /** Any request, answered with any status. */
  request: Send;
  /** POST /publish with `body` as JSON; `query` starts with `?`. Any status. */
  publish(body: unknown, query?: string): Promise<Reply>;
  /** GET `path`, parsed; throws on anything but a 2xx answer. */
  get(path: string): Promise<any>;
}

export const parseBody = (contentType: unknown, text: string): unknown =>
  String(contentType).startsWith('application/json') ? JSON.parse(text) : text;

/** Builds the client on a way of sending one request. */
export function clientOver(request: Send): TestClient {
  return {
    request,
    publish: (body, query = '') => request('POST', `/publish${query}`, body),
    async get(path) {
      const reply = await request('GET', path);
      if (reply.status < 200 || reply.status > 299) throw new Error(`GET ${path} answered ${reply.status}: ${JSON.stringify(reply.body)}`);
      return reply.body;
    },
  };
}
