import { Readable } from 'node:stream';
import { Descriptor, DigestMismatchError, SizeMismatchError } from '@strata/oci';
import { Store, VerifyingStream } from '@strata/store';
import { RegistryError } from './errors';
import { headerValue } from './http';
import { ProgressFn, Repo, blobUrl } from './repository';
import { backoffDelay, isRetriable, sleep } from './retry';

export type PullOutcome = 'present' | 'downloaded';

export interface PullBlobOptions {
  onProgress?: ProgressFn;
}

/**
 * Stream a blob from the registry, verified: the stream errors with a digest or size mismatch
 * at EOF instead of ending cleanly. For the build cache and other lazy readers.
 */
export async function fetchBlob(
  r: Repo,
  desc: Pick<Descriptor, 'digest' | 'size'>,
): Promise<Readable> {
  const { stream: body } = await openDownload(r, desc, 0);
  const verify = new VerifyingStream(
    { digest: desc.digest, size: desc.size },
    `blob ${desc.digest} from ${r.registry}`,
  );
  body.on('error', (e) => verify.destroy(e));
  return body.pipe(verify);
}

/**
 * Download a blob into the store unless it is there already. The bytes go once, straight into
 * the store's partial file for this digest (see `Store.withPartial`), and become a blob only
 * when size and digest check out. A pull that is interrupted, even killed, resumes from there
 * with a Range request.
 */
export async function pullBlob(
  r: Repo,
  store: Store,
  desc: Pick<Descriptor, 'digest' | 'size'>,
  opts: PullBlobOptions = {},
): Promise<PullOutcome> {
  if (await store.hasBlob(desc.digest)) return 'present';
  const expected = { digest: desc.digest, size: desc.size };
  return store.withPartial(expected, async (partial) => {
    // Someone else may have fetched it while we waited for the lock.
    if (await store.hasBlob(desc.digest)) return 'present';
    const retries = r.transport.retries;
    let restartedClean = false;
    for (let n = 0; ; n++) {
      const have = await partial.length();
      try {
        let got = have;
        if (have < desc.size) {
          const body = await openDownload(r, desc, have);
          got = body.start;
          opts.onProgress?.(got);
          got = await partial.append(countedChunks(body.stream, got, opts.onProgress), got);
        }
        if (got !== desc.size) {
          // The connection ended early without an error: resume from what we have.
          const e = new Error(
            `transfer of ${desc.digest} ended at ${got} of ${desc.size} bytes`,
          ) as NodeJS.ErrnoException;
          e.code = 'ECONNRESET';
          throw e;
        }
        await partial.commit();
        return 'downloaded';
      } catch (e) {
        if (e instanceof DigestMismatchError || e instanceof SizeMismatchError) {
          await partial.reset();
          // A stale partial from an earlier run may be what was wrong: start clean once.
          if (have > 0 && !restartedClean) {
            restartedClean = true;
            continue;
          }
          throw new RegistryError(
            e.code,
            `${r.registry}/${r.repository}: ${e.message} (the registry sent wrong content; nothing was stored)`,
            undefined,
            [],
            { cause: e },
          );
        }
        if (n < retries && isRetriable(e)) {
          await sleep(backoffDelay(n, r.transport.retryBaseMs));
          continue;
        }
        throw e;
      }
    }
  });
}

/** Pass a response body through, reporting the running byte count; destroys it when done. */
async function* countedChunks(
  body: Readable,
  start: number,
  onProgress?: ProgressFn,
): AsyncGenerator<Buffer> {
  let got = start;
  try {
    for await (const chunk of body) {
      got += (chunk as Buffer).length;
      onProgress?.(got);
      yield chunk as Buffer;
    }
  } finally {
    body.destroy();
  }
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
