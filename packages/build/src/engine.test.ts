import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Store } from '@strata/store';
import { createTemplate } from '@strata/template';
import { BuildEvent, build } from './engine';

/**
 * FROM, as compared with Stratafile.lock. The Stratafiles add
 * only FEATUREs, so nothing runs in a chroot.
 */
let dir: string;
let store: Store;

async function template(tag: string, marker: string): Promise<void> {
  const root = path.join(dir, `root-${marker}`);
  fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\nVERSION_CODENAME=bookworm\n');
  fs.writeFileSync(path.join(root, 'etc/marker'), `${marker}\n`);
  await createTemplate(store, { source: { kind: 'dir', path: root }, tag, name: 'acme-platform' });
}

function stratafile(name: string, lines: string[]): string {
  const file = path.join(dir, name, 'Stratafile');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-engine-from-'));
  store = await Store.open(path.join(dir, 'store'));
  await template('platform-one:1', 'one');
  await template('platform-two:1', 'two');
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a rebuild on a moved base says so, from the digest in Stratafile.lock to the new one', async () => {
  await store.tag('moving:1', await store.resolve('platform-one:1'));
  const file = stratafile('moving', ['FROM moving:1', 'FEATURE x']);
  const events: BuildEvent[] = [];
  const onEvent = (e: BuildEvent) => events.push(e);
  await build(store, { file, tag: 'x:1', onEvent });
  await build(store, { file, tag: 'x:1', onEvent });
  expect(events.filter((e) => e.type === 'base-moved')).toEqual([]);

  await store.tag('moving:1', await store.resolve('platform-two:1'));
  await build(store, { file, tag: 'x:1', onEvent });
  expect(events.filter((e) => e.type === 'base-moved')).toEqual([
    {
      type: 'base-moved',
      ref: 'moving:1',
      from: (await store.resolve('platform-one:1')).digest,
      to: (await store.resolve('platform-two:1')).digest,
      loc: expect.objectContaining({ line: 1, column: 1 }) as unknown,
    },
  ]);
  // The lock now has the new digest: the next build is quiet again.
  events.length = 0;
  await build(store, { file, tag: 'x:1', onEvent });
  expect(events.filter((e) => e.type === 'base-moved')).toEqual([]);
});
