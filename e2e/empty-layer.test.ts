/**
 * A step that changes nothing (`RUN true`) makes no layer, as BuildKit makes none: the image has
 * only its history entry, marked `empty_layer`, and the step is cached, checked and built upon
 * like any other.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { SLOW, cleanupTmp, runOk, strata, strataOk } from './helpers';
import { buildJson, readImage, storeWithBase } from './fixtures/build/harness';

let work: string;
let store: string;
let sources: string;

interface Step {
  instruction: string;
  status: string;
  cacheKey?: string;
  layer?: unknown;
  emptyLayer?: boolean;
}

function context(name: string, lines: string[]): string {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'Stratafile'), `${lines.join('\n')}\n`);
  return dir;
}

async function build(dir: string, tag: string) {
  const r = await buildJson(['--apt-sources', sources, '-t', tag, dir], store);
  return r as typeof r & { steps: Step[] };
}

/** The steps as `[instruction, has a layer, emptyLayer]`. */
const shape = (steps: Step[]) =>
  steps.map((s) => [s.instruction, s.layer !== undefined, s.emptyLayer === true]);

async function skopeo(what: '--config' | '--raw', tag: string) {
  return JSON.parse((await runOk('skopeo', ['inspect', what, `oci:${store}:${tag}`])).stdout);
}

async function check(dir: string, tag: string, extra: string[] = []) {
  const file = path.join(dir, 'Stratafile');
  const r = await strata(['check', '--no-packages', '-f', file, ...extra, tag], { store });
  return [r.code, r.stdout.trim(), r.stderr];
}

async function flattened(tag: string): Promise<string> {
  const out = path.join(work, `${tag.replace(':', '-')}.tar`);
  await strataOk(['flatten', tag, '--rootfs', out], { store });
  return createHash('sha256').update(fs.readFileSync(out)).digest('hex');
}

beforeAll(async () => {
  ({ work, store, sources } = await storeWithBase());
}, SLOW);

afterAll(() => cleanupTmp());

test(
  'RUN true between two changing steps adds no layer, only an empty_layer history entry, and is cached and checked',
  async () => {
    const dir = context('with', [
      'FROM base:v1',
      'RUN echo a > /etc/a',
      'RUN true',
      'RUN echo b > /etc/b',
    ]);
    const first = await build(dir, 'empty:1');
    const nBase = readImage(store, 'base:v1').manifest.layers.length;
    expect(first.layers).toHaveLength(nBase + 2);
    expect(shape(first.steps)).toEqual([
      ['RUN echo a > /etc/a', true, false],
      ['RUN true', false, true],
      ['RUN echo b > /etc/b', true, false],
    ]);

    // As any OCI tool reads it: two layers more than the base, three history entries.
    expect((await skopeo('--raw', 'empty:1')).layers).toHaveLength(nBase + 2);
    const config = await skopeo('--config', 'empty:1');
    expect(config.rootfs.diff_ids).toHaveLength(nBase + 2);
    expect(
      config.history
        .slice(nBase)
        .map((h: { created_by: string; empty_layer?: boolean }) => [h.created_by, !!h.empty_layer]),
    ).toEqual([
      ['RUN echo a > /etc/a', false],
      ['RUN true', true],
      ['RUN echo b > /etc/b', false],
    ]);
    // inspect lists it where it ran, as docker history does.
    const shown = (await strataOk(['inspect', 'empty:1'], { store })).stdout.split('\n');
    const at = shown.findIndex((l) => l.endsWith('RUN echo a > /etc/a'));
    expect(shown.slice(at, at + 3).map((l) => l.slice(28))).toEqual([
      'RUN echo a > /etc/a',
      'RUN true',
      'RUN echo b > /etc/b',
    ]);
    expect(shown[at + 1]).toMatch(/^ {2}\(no layer\) +0 B {2}RUN true$/);
    const summary = JSON.parse(
      (await strataOk(['--json', 'inspect', 'empty:1'], { store })).stdout,
    ) as { emptySteps: unknown };
    expect(summary.emptySteps).toEqual([{ after: nBase + 1, createdBy: 'RUN true' }]);
    const lock = JSON.parse(fs.readFileSync(path.join(dir, 'Stratafile.lock'), 'utf8'));
    expect(lock.stages[0].steps[1]).toEqual({
      instruction: 'RUN true',
      cacheKey: first.steps[1]?.cacheKey,
      emptyLayer: true,
      packages: [],
      removed: [],
    });

    // A rebuild takes every step from the cache, the empty one too: nothing runs.
    const again = await build(dir, 'empty:2');
    expect([again.stepsRun, again.cacheHits]).toEqual([0, 3]);
    expect(shape(again.steps)).toEqual(shape(first.steps));
    expect(again.steps.map((s) => s.status)).toEqual(['cached', 'cached', 'cached']);

    expect(await check(dir, 'empty:1', ['--apt-sources', sources])).toEqual([
      0,
      'empty:1 is up to date',
      '',
    ]);
    expect(await check(dir, 'empty:1')).toEqual([0, 'empty:1 is up to date', '']);

    // The same tree as without the step.
    const plain = context('without', [
      'FROM base:v1',
      'RUN echo a > /etc/a',
      'RUN echo b > /etc/b',
    ]);
    await build(plain, 'plain:1');
    expect(await flattened('empty:1')).toBe(await flattened('plain:1'));
  },
  SLOW,
);

test(
  'a template FROM one with an empty step keeps that history entry, and check lines its own steps up with its layers',
  async () => {
    const dir = context('child', [
      'FROM empty:1',
      'RUN true',
      'RUN echo c > /etc/c',
      'RUN : nothing',
    ]);
    const r = await build(dir, 'child:1');
    const nBase = readImage(store, 'base:v1').manifest.layers.length;
    expect(r.layers).toHaveLength(nBase + 3);
    expect(shape(r.steps)).toEqual([
      ['RUN true', false, true],
      ['RUN echo c > /etc/c', true, false],
      ['RUN : nothing', false, true],
    ]);
    const config = await skopeo('--config', 'child:1');
    expect(
      config.history
        .slice(nBase)
        .map((h: { created_by: string; empty_layer?: boolean }) => [h.created_by, !!h.empty_layer]),
    ).toEqual([
      ['RUN echo a > /etc/a', false],
      ['RUN true', true],
      ['RUN echo b > /etc/b', false],
      ['RUN true', true],
      ['RUN echo c > /etc/c', false],
      ['RUN : nothing', true],
    ]);
    expect(await check(dir, 'child:1')).toEqual([0, 'child:1 is up to date', '']);

    // An edited empty step is reported as itself, not as the layer after it.
    fs.writeFileSync(
      path.join(dir, 'Stratafile'),
      'FROM empty:1\nRUN true\nRUN echo c > /etc/c\nRUN : something\n',
    );
    const stale = await check(dir, 'child:1');
    expect(stale[0]).toBe(1);
    expect(stale[1]).toContain('RUN : something: changed: the template has "RUN : nothing" here');
  },
  SLOW,
);
