import { InvalidArgumentError } from '@strata/oci';
import { MOUNT_DATA_MAX, MountOptionsTooLongError, overlayMountData } from './sandbox';

const SNAPS = '/var/lib/strata/store/.strata/snapshots';
const hex = (i: number) => i.toString(16).padStart(64, '0');

describe('overlayMountData', () => {
  test('joins lower dirs topmost first, with the upper and work dirs', () => {
    expect(overlayMountData({ lower: ['/a', '/b'], upper: '/u', work: '/w' })).toBe(
      'lowerdir=/a:/b,upperdir=/u,workdir=/w',
    );
  });

  test('passes paths under the mount cwd relative to it, others as they are', () => {
    expect(
      overlayMountData({
        lower: ['l/0123456789ab/fs', '/elsewhere/fs'],
        upper: `${SNAPS}/.tmp-step-1-ab/upper`,
        work: '/tmp/ovl',
        cwd: SNAPS,
      }),
    ).toBe(
      'lowerdir=l/0123456789ab/fs:/elsewhere/fs,upperdir=.tmp-step-1-ab/upper,workdir=/tmp/ovl',
    );
    // A path that only shares a prefix with the cwd is not under it.
    expect(
      overlayMountData({
        lower: ['/x'],
        upper: `${SNAPS}-other/u`,
        work: `${SNAPS}/w`,
        cwd: SNAPS,
      }),
    ).toBe(`lowerdir=/x,upperdir=${SNAPS}-other/u,workdir=w`);
  });

  test('100 absolute snapshot paths do not fit a page; 100 short links do', () => {
    const long = Array.from({ length: 100 }, (_, i) => `${SNAPS}/${hex(i)}/fs`);
    const upper = `${SNAPS}/.tmp-step-1-ab/upper`;
    const work = `${SNAPS}/.tmp-step-1-ab/ovl`;
    expect(() => overlayMountData({ lower: long, upper, work })).toThrow(MountOptionsTooLongError);
    const short = Array.from({ length: 100 }, (_, i) => `l/${hex(i).slice(-12)}/fs`);
    const data = overlayMountData({ lower: short, upper, work, cwd: SNAPS });
    expect(data.length).toBeLessThanOrEqual(MOUNT_DATA_MAX);
  });

  test('the bound is the page: 4095 bytes fit, 4096 do not', () => {
    const fixed = 'lowerdir=,upperdir=/u,workdir=/w'.length;
    const fits = `/${'a'.repeat(MOUNT_DATA_MAX - fixed - 1)}`;
    expect(overlayMountData({ lower: [fits], upper: '/u', work: '/w' })).toHaveLength(4095);
    const e = (() => {
      try {
        overlayMountData({ lower: [`${fits}b`], upper: '/u', work: '/w' });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(MountOptionsTooLongError);
    expect(e).toMatchObject({ bytes: 4096, layers: 1 });
  });

  test('refuses what the option syntax cannot carry', () => {
    const bad = [
      { lower: ['/a:b'], upper: '/u', work: '/w' },
      { lower: ['/a,b'], upper: '/u', work: '/w' },
      { lower: ['/a'], upper: '/u,x', work: '/w' },
      { lower: ['/a\nb'], upper: '/u', work: '/w' },
      { lower: ['relative'], upper: '/u', work: '/w' },
      { lower: [], upper: '/u', work: '/w' },
    ];
    for (const o of bad) expect(() => overlayMountData(o)).toThrow(InvalidArgumentError);
  });
});
