import { counted, progressFigures } from './output';

describe('progressFigures', () => {
  it('shows bytes against the total while they stay within it', () => {
    expect(progressFigures(50 * 1024 * 1024, 100 * 1024 * 1024)).toEqual({
      text: '50.0 MiB / 100.0 MiB',
      fraction: 0.5,
    });
    expect(progressFigures(1024, undefined)).toEqual({ text: '1.0 KiB' });
  });

  it('never shows more bytes than the total: an overrun grows the total and marks it ~', () => {
    const mib = 1024 * 1024;
    const f = progressFigures(179.4 * mib, 177.4 * mib);
    expect(f.text).toBe('179.4 MiB / ~179.4 MiB');
    expect(f.fraction).toBe(1);
  });

  it('marks a total the caller calls an estimate', () => {
    expect(progressFigures(1024, 2048, true).text).toBe('1.0 KiB / ~2.0 KiB');
  });
});

test('counted says "1 step run", not "1 steps run"', () => {
  expect(`${counted(1, 'step')} run`).toBe('1 step run');
  expect(counted(0, 'step')).toBe('0 steps');
  expect(counted(2, 'entry', 'entries')).toBe('2 entries');
});
