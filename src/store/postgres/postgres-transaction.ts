import type pg from 'pg';

/**
 * Runs `work` on a connection checked out of `pool` for it alone. A connection that saw any error goes
 * back destroyed, never to be reused: after a client-side timeout the server may still run the statement
 * or hold a transaction open, and the next user of the connection would join it (issue 23: a batch
 * acknowledged inside a consumer command's abandoned BEGIN, then rolled back with it). Closing the socket
 * makes the server end and roll back whatever was left; telling harmless errors apart is not worth the
 * risk for the price of one reconnect. While checked out, the connection's own 'error' events (the server
 * gone, the session terminated) are caught here: the pool listens only to idle connections, and an
 * unhandled one would end the thread.
 */
export async function withConnection<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failure: Error | undefined;
  const lost = (error: Error) => {
    failure ??= error;
  };
  client.on('error', lost);
  try {
    return await work(client);
  } catch (error) {
    failure ??= error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    client.off('error', lost);
    client.release(failure);
  }
}

/**
 * The one way to run an explicit transaction: `begin` (BEGIN, with any SET LOCAL after it), `work`, COMMIT,
 * on a connection of its own (withConnection). Any error ends the transaction with the connection, so no
 * ROLLBACK is sent: after a timeout it would only queue behind the statement that hangs.
 */
export function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  return withConnection(pool, async (client) => {
    await client.query(begin);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  });
}
