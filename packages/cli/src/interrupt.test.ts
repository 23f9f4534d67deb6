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
  const i = new Interruption();
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
  i.interrupt();
  expect(await settled(i.stopped)).toBe('rejected');
  finish();
  await expect(work).resolves.toBe('cleaned up');
});
