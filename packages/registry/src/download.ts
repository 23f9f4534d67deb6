import { Readable } from 'node:stream';
import { Descriptor, SizeMismatchError, VerifyingStream } from '@strata/oci';
import { RegistryError } from './errors';
import { headerValue } from './http';
import { Repo, blobUrl } from './repository';
import { backoffDelay, isRetriable, retryThrown, sleep } from './retry';

/**
 * Stream a blob from the registry, verified: the stream errors with a digest or size mismatch
 * at EOF instead of ending cleanly. Network failures on the way are retried (see fetchRange).
 */
export async function fetchBlob(
  r: Repo,
  desc: Pick<Descriptor, 'digest' | 'size'>,
): Promise<Readable> {
  const body = await fetchRange(r, desc, 0);
  const verify = new VerifyingStream(
    { digest: desc.digest, size: desc.size },
    `blob ${desc.digest} from ${r.registry}`,
  );
  body.on('error', (e) => verify.destroy(e));
  verify.on('close', () => body.destroy());
  return body.pipe(verify);
}

/**
 * Bytes `start`..`end` (inclusive; default to the end) of a blob, not verified (the writer that
 * asked for a range verifies the whole). A connection that fails or ends early is resumed with a
 * Range request from the byte reached, up to the transport's retries, so the stream either
 * yields exactly the range or errors; a registry that ignores Range has the bytes already sent
 * skipped. The first request goes out now, so an error such as a 404 is thrown here.
 */
export async function fetchRange(
  r: Repo,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  start: number,
  end?: number,
): Promise<Readable> {
  const limit = end === undefined ? desc.size : Math.min(end + 1, desc.size);
  const first = await openWithRetries(r, desc, start, 0);
  const chunks = async function* (): AsyncGenerator<Buffer> {
    let at = start;
    let opened: { stream: Readable; start: number } | undefined = first.opened;
    let failures = first.failures;
    while (at < limit) {
      if (opened === undefined) {
        const o = await openWithRetries(r, desc, at, failures);
        failures = o.failures;
        opened = o.opened;
      }
      const { stream } = opened;
      let pos = opened.start;
      try {
        for await (const chunk of stream) {
          let c = chunk as Buffer;
          // A registry that ignored the Range request sends from byte 0: skip what we have.
          if (pos < at) {
            const skip = Math.min(at - pos, c.length);
            pos += skip;
            c = c.subarray(skip);
            if (c.length === 0) continue;
          }
          if (at + c.length > limit) {
            if (end === undefined) {
              throw new SizeMismatchError(desc.size, at + c.length, `blob ${desc.digest}`);
            }
            c = c.subarray(0, limit - at);
          }
          pos += c.length;
          at += c.length;
          yield c;
          if (at >= limit) break;
        }
        if (at < limit) throw endedEarly(desc, at);
      } catch (e) {
        if (e instanceof SizeMismatchError || !isRetriable(e)) throw e;
        if (failures >= r.transport.retries) throw dropped(r, desc, at, failures, e);
        await sleep(backoffDelay(failures++, r.transport.retryBaseMs));
      } finally {
        stream.destroy();
        opened = undefined;
      }
    }
  };
  // Object mode passes each Buffer on as it came; a byte-mode stream would join what it buffers
  // into one new Buffer per read, copying every byte of the blob once more.
  const out = Readable.from(chunks(), { objectMode: true, highWaterMark: 16 });
  // A stream dropped before its first read never runs the generator's cleanup: let the
  // response go here too (destroying it twice is harmless).
  out.on('close', () => first.opened.stream.destroy());
  return out;
}

/** A connection that ended cleanly before the last byte: retried like a reset. */
function endedEarly(desc: Pick<Descriptor, 'digest' | 'size'>, at: number): Error {
  const e = new Error(
    `transfer of ${desc.digest} ended at ${at} of ${desc.size} bytes`,
  ) as NodeJS.ErrnoException;
  e.code = 'ECONNRESET';
  return e;
}

/**
 * A transfer whose connection kept failing until the retries ran out: which blob, how far it
 * got, and how often it was tried, instead of the socket's bare "aborted".
 */
function dropped(
  r: Repo,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  at: number,
  failures: number,
  cause: unknown,
): RegistryError {
  const code = (cause as NodeJS.ErrnoException)?.code;
  const how =
    code === 'ECONNRESET' || code === 'EPIPE' || (cause as Error)?.message === 'aborted'
      ? 'the connection dropped'
      : code === 'ETIMEDOUT' || code === 'ESOCKETTIMEDOUT'
        ? `the connection timed out (${String((cause as Error)?.message ?? 'no data')})`
        : String((cause as Error)?.message ?? cause);
  const tries =
    failures === 0
      ? 'not retried (retries are off)'
      : `after ${failures} ${failures === 1 ? 'retry' : 'retries'} resuming from the byte reached`;
  return new RegistryError(
    'UNAVAILABLE',
    `${r.registry}: GET blob ${desc.digest}: ${how} with ${at} of ${desc.size} bytes received, ${tries}`,
    undefined,
    [],
    { cause },
  );
}

/** {@link openDownload}, retried on network failures; counts the failures spent. */
async function openWithRetries(
  r: Repo,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  at: number,
  spent: number,
): Promise<{ opened: { stream: Readable; start: number }; failures: number }> {
  let failures = spent;
  const opened = await retryThrown(
    { retries: r.transport.retries, baseMs: r.transport.retryBaseMs },
    (n) => {
      failures = n;
      return openDownload(r, desc, at);
    },
    spent,
  );
  return { opened, failures };
}

/** GET a blob, from byte `have` on when there is a partial; checks the answered range and length. */
async function openDownload(
  r: Repo,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  have: number,
): Promise<{ stream: Readable; start: number }> {
  const res = await r.transport.request({
    method: 'GET',
    url: blobUrl(r, desc.digest),
    headers: have > 0 ? { range: `bytes=${have}-` } : {},
    scopes: [r.scope],
    expect: [200, 206],
    what: `GET blob ${desc.digest}`,
    stream: true,
  });
  const body = res.stream as Readable;
  let start = 0;
  if (res.status === 206) {
    const m = /^bytes (\d+)-/.exec(headerValue(res.headers['content-range']) ?? '');
    if (!m || Number(m[1]) !== have) {
      body.destroy();
      throw new RegistryError(
        'CORRUPT',
        `${r.registry}: GET blob ${desc.digest}: the registry answered a Range request with the wrong range`,
      );
    }
    start = have;
  }
  const len = headerValue(res.headers['content-length']);
  if (len !== undefined && start + Number(len) !== desc.size) {
    body.destroy();
    throw new SizeMismatchError(
      desc.size,
      start + Number(len),
      `blob ${desc.digest} from ${r.registry}`,
    );
  }
  return { stream: body, start };
}
