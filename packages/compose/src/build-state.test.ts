import { makeSources } from '@strata/debian';
import { StageState, recordAptSources } from './build-state';

test('recordAptSources keeps each deb entry once, in first use order, without credentials', () => {
  const state = { aptSources: ['deb http://base.example/debian bookworm main'] } as StageState;
  recordAptSources(
    state,
    makeSources(
      'deb http://user:secret@mirror.example/debian bookworm main contrib\n' +
        'deb http://base.example/debian bookworm main\n' +
        'deb-src http://mirror.example/debian bookworm main\n',
      'test',
    ),
  );
  expect(state.aptSources).toEqual([
    'deb http://base.example/debian bookworm main',
    'deb http://mirror.example/debian bookworm main contrib',
  ]);
  expect(JSON.stringify(state.aptSources)).not.toContain('secret');
});
