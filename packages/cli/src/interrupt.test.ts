import { Interruption } from './interrupt';

/** How `p` stands once the promises already due have run. */
const settled = async (p: Promise<unknown>): Promise<string> => {
  let state = 'pending';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  await new Promise((r) => setImmediate(r));
  return state;
};

test('an interruption outside interruptible work ends the command at once', async () => {
  const i = new Interruption();
  i.interrupt();
  await expect(i.stopped).rejects.toMatchObject({ code: 'INTERRUPTED', message: 'interrupted' });
  await expect(i.within(async () => 'never started')).rejects.toMatchObject({
    code: 'INTERRUPTED',
  });
});

test('interruptible work is told and waited for; a second interruption does not wait', async () => {
  let now = 0;
  const i = new Interruption(() => now);
  let told: AbortSignal | undefined;
  let finish: () => void = () => undefined;
  const work = i.within(
    (signal) =>
      new Promise<string>((resolve) => {
        told = signal;
        finish = () => resolve('cleaned up');
      }),
  );
  i.interrupt();
  expect(told?.aborted).toBe(true);
  expect(await settled(i.stopped)).toBe('pending');
  now += 5000;
  i.interrupt();
  expect(await settled(i.stopped)).toBe('rejected');
  finish();
  await expect(work).resolves.toBe('cleaned up');
});

test('the same signal again within a second is its echo, not a second interruption', async () => {
  let now = 0;
  const i = new Interruption(() => now);
  let finish: () => void = () => undefined;
  const work = i.within(() => new Promise<string>((resolve) => (finish = () => resolve('done'))));
  // GNU timeout signals the command, then its process group: the CLI sees SIGINT twice.
  i.interrupt('SIGINT');
  now += 30;
  i.interrupt('SIGINT');
  expect(await settled(i.stopped)).toBe('pending');
  // Echoes are timed from the first: repeating them does not put off a real second interruption.
  now += 900;
  i.interrupt('SIGINT');
  expect(await settled(i.stopped)).toBe('pending');
  now += 200;
  i.interrupt('SIGINT');
  expect(await settled(i.stopped)).toBe('rejected');
  finish();
  await expect(work).resolves.toBe('done');
});

test('another signal soon after the first is a second interruption', async () => {
  let now = 0;
  const i = new Interruption(() => now);
  const work = i.within(() => new Promise<never>(() => undefined));
  work.catch(() => undefined);
  i.interrupt('SIGINT');
  now += 30;
  i.interrupt('SIGTERM');
  expect(await settled(i.stopped)).toBe('rejected');
});
