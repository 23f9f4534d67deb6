import { dpkgSeries } from './run-step';

test("dpkgSeries: a dpkg version's release series", () => {
  expect(dpkgSeries('1.21.22')).toBe('1.21');
  expect(dpkgSeries('1.21.23')).toBe('1.21');
  expect(dpkgSeries('1.22.6+b1')).toBe('1.22');
  expect(dpkgSeries('1.22.21ubuntu3')).toBe('1.22');
  expect(dpkgSeries('2')).toBe('2');
  expect(dpkgSeries('1:1.21.1')).toBe('1.21');
  expect(dpkgSeries('1.21')).toBe('1.21');
});
