import { RegistryError } from './errors';

const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRY_ERRNO = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EAI_AGAIN',
  'ECONNABORTED',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
]);

/** Whether an answer's status is worth another attempt (5xx, 429). */
export function isRetriableStatus(status: number): boolean {
  return RETRY_STATUS.has(status);
}

/**
 * Failures that have had their retries already: a request the transport tried again and gave up
 * on. A caller that retries what it calls (a blob download, an upload) must not try them once
 * more, or the attempts multiply (5 × 5 requests to a registry that answers 503).
 */
const spent = new WeakSet<object>();

/** Mark `e` as a failure whose retries are spent (see {@link isRetriable}); returns it. */
export function retriesSpent<E>(e: E): E {
  if (typeof e === 'object' && e !== null) spent.add(e);
  return e;
}

/**
 * Whether a failure is worth another attempt (connection resets, timeouts, 5xx, 429), unless it
 * has had its retries already.
 */
export function isRetriable(e: unknown): boolean {
  if (typeof e === 'object' && e !== null && spent.has(e)) return false;
  if (e instanceof RegistryError) {
    if (e.status !== undefined) return RETRY_STATUS.has(e.status);
    // A dropped connection, named with the registry and the request it broke.
    return e.cause !== undefined && isRetriable(e.cause);
  }
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code && RETRY_ERRNO.has(code)) return true;
  return (e as Error)?.message === 'aborted';
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Exponential backoff with full jitter; honours Retry-After (seconds) when given. */
export function backoffDelay(attempt: number, baseMs: number, retryAfter?: string): number {
  if (retryAfter && /^\d+$/.test(retryAfter)) return Math.min(Number(retryAfter) * 1000, 30000);
  const cap = baseMs * 2 ** attempt;
  return Math.round(cap / 2 + (Math.random() * cap) / 2);
}

/** How often, and how patiently, to try again. */
export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  /** First backoff delay in ms, doubled on each retry (with jitter). */
  baseMs: number;
}

/** What {@link withRetries} needs of an answer: its status, a Retry-After, a body to let go of. */
interface Answer {
  status: number;
  headers: { 'retry-after'?: string | string[] | undefined };
  stream?: { destroy(): void } | undefined;
}

/** Run an attempt with retries for transient failures: a retriable status, or a thrown error. */
export async function withRetries<R extends Answer>(
  policy: RetryPolicy,
  attempt: () => Promise<R>,
): Promise<R> {
  for (let n = 0; ; n++) {
    try {
      const res = await attempt();
      if (RETRY_STATUS.has(res.status) && n < policy.retries) {
        res.stream?.destroy();
        const after = res.headers['retry-after'];
        await sleep(backoffDelay(n, policy.baseMs, Array.isArray(after) ? after[0] : after));
        continue;
      }
      return res;
    } catch (e) {
      if (n < policy.retries && isRetriable(e)) {
        await sleep(backoffDelay(n, policy.baseMs));
        continue;
      }
      throw e;
    }
  }
}

/**
 * Run `attempt(n)` until it succeeds, trying again after a transient failure it throws. `n`
 * starts at `spent`, the failures a longer transfer has already used up, so that one transfer
 * never gets more than `policy.retries` in all.
 */
export async function retryThrown<T>(
  policy: RetryPolicy,
  attempt: (n: number) => Promise<T>,
  spent = 0,
): Promise<T> {
  for (let n = spent; ; n++) {
    try {
      return await attempt(n);
    } catch (e) {
      if (n < policy.retries && isRetriable(e)) {
        await sleep(backoffDelay(n, policy.baseMs));
        continue;
      }
      throw e;
    }
  }
}
