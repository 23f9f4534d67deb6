import { stepLine } from './step-line';

test('stepLine: a step with here-documents shows its first line and how many follow', () => {
  expect(stepLine('RUN apt-get clean')).toBe('RUN apt-get clean');
  expect(stepLine('RUN <<EOF\necho a\nEOF')).toBe('RUN <<EOF … (2 more lines)');
  expect(stepLine('RUN cat <<E\nE')).toBe('RUN cat <<E … (1 more line)');
});
