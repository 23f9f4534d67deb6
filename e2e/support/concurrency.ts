/**
 * What every run of commands side by side on one store must leave: no mount and no process of
 * theirs, a store that fsck finds whole, and no scratch directory of a snapshot left behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { strataOk } from './processes';
import { mountsUnder, processesUsing } from '../fixtures/build/harness';

export async function assertStoreClean(store: string): Promise<void> {
  expect(await mountsUnder(store)).toEqual([]);
  expect(processesUsing(store)).toEqual([]);
  expect((await strataOk(['fsck'], { store })).stdout).toMatch(/^ok:/m);
  const snaps = path.join(store, '.strata', 'snapshots');
  expect(fs.readdirSync(snaps).filter((n) => n.startsWith('.tmp-'))).toEqual([]);
}
