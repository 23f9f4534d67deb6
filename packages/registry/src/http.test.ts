import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { RegistryError } from './errors';
import { readBody } from './http';
import { isRetriable } from './retry';

/** GET `/` from a server whose answer `respond` writes; resolves to the response. */
async function answer(
  respond: (res: http.ServerResponse) => void,
): Promise<{ res: http.IncomingMessage; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => respond(res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get({ host: '127.0.0.1', port, path: '/', agent: false }, resolve).on('error', reject),
  );
  return {
    res,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('readBody', () => {
  it('buffers a body in several chunks', async () => {
    const body = await readBody(Readable.from([Buffer.from('ab'), Buffer.from('cd')]), 10);
    expect(body.toString()).toBe('abcd');
  });

  it('refuses a body larger than the limit, and stops reading it', async () => {
    const src = Readable.from([Buffer.alloc(6), Buffer.alloc(6), Buffer.alloc(6)]);
    const e = await readBody(src, 10).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RegistryError);
    expect((e as Error).message).toMatch(/larger than 10 bytes/);
    expect(src.destroyed).toBe(true);
  });

  it('fails, retriably, when the connection drops before the end of the body', async () => {
    const { res, close } = await answer((r) => {
      r.writeHead(200, { 'content-length': 100 });
      r.write('0123456789');
      setTimeout(() => r.socket?.destroy(), 20);
    });
    try {
      const e = await readBody(res, 1000).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'ECONNRESET' });
      expect(isRetriable(e)).toBe(true);
    } finally {
      await close();
    }
  });

  it('fails when the stream is destroyed under it without an error', async () => {
    const src = new Readable({ read: () => undefined });
    src.push(Buffer.from('x'));
    const p = readBody(src, 10);
    setImmediate(() => src.destroy());
    await expect(p).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
  });
});
