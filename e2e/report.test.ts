/**
 * `strata report` in a real browser: Debian's chromium, headless, driven by Playwright. The
 * report is of a template built FROM the minbase base with curl installed, against that base;
 * a second one, of two tiny templates, carries file names written to break out of the page.
 * Screenshots go to test-output/report/, so that a failing run can be looked at.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Browser, chromium, Page } from 'playwright-core';
import { BASE_ARCHIVE, buildJson, saveDebs, storeWithBase } from './fixtures/build/harness';
import {
  REPO_ROOT,
  SLOW,
  isOneLineError,
  makeTinyRootfs,
  strata,
  strataOk,
  tmpDir,
} from './helpers';

jest.setTimeout(SLOW);

const SHOTS = path.join(REPO_ROOT, 'test-output', 'report');
const CHROMIUM = process.env.STRATA_CHROMIUM ?? '/usr/bin/chromium';

let work: string;
let store: string;
let browser: Browser;
let report: string;

beforeAll(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const s = await storeWithBase();
  work = s.work;
  store = s.store;
  const ctx = path.join(work, 'ctx');
  fs.mkdirSync(ctx);
  fs.writeFileSync(path.join(ctx, 'Stratafile'), 'FROM base:v1\nINSTALL curl\n');
  await buildJson(['--apt-sources', s.sources, '-t', 'derived:curl', ctx], store);
  saveDebs(store);
  report = path.join(work, 'report.html');
  await strataOk(['report', 'derived:curl', '--against', 'base:v1', '-o', report], { store });
  // Root in a container has no user namespaces for chromium's sandbox.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

afterAll(async () => {
  await browser?.close();
});

interface Opened {
  page: Page;
  /** Console errors, uncaught exceptions and dialogs, as they happened. */
  problems: string[];
  /** Every URL the page asked for. */
  requests: string[];
}

async function open(file: string): Promise<Opened> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const problems: string[] = [];
  const requests: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(`file://${file}`, { waitUntil: 'load' });
  return { page, problems, requests };
}

/** What the tests read in the page (the e2e project compiles without the DOM's types). */
interface InPage {
  document: { querySelectorAll(sel: string): ArrayLike<{ textContent: string | null }> };
  strataReport: {
    treePath: string;
    charts: Record<
      string,
      { getOption(): { series: { data: { name: string; children?: unknown[] }[] }[] } }
    >;
  };
}

const shot = (page: Page, name: string) =>
  page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

test('the report is one file under 5 MB that loads with no console errors and asks for nothing', async () => {
  expect(fs.statSync(report).size).toBeLessThan(5 * 1024 * 1024);
  const { page, problems, requests } = await open(report);
  await shot(page, 'loaded');
  expect(problems).toEqual([]);
  expect(requests).toEqual([`file://${report}`]);
  const header = await page.locator('header').innerText();
  const base = JSON.parse((await strataOk(['--json', 'inspect', 'base:v1'], { store })).stdout);
  expect(header).toContain('derived:curl');
  expect(header).toContain(`base:v1@${base.digest}`);
  expect(header).toMatch(/Platform\s+linux\/amd64/);
  expect(header).toContain('var/lib/apt/lists/*');
  // The diff against the base is on the page: curl among the packages it added.
  const changes = await page.locator('#diff').innerText();
  expect(changes).toMatch(/^\+ curl \S+ \(amd64\)$/m);
  // innerText shows the page's two spaces before a size as one.
  expect(changes).toMatch(/^\+ usr\/bin\/curl \d/m);
  await page.close();
});

test('the layer chart and the treemap are drawn, each layer labelled with what made it', async () => {
  const { page, problems } = await open(report);
  const drawn = await page.evaluate(() => {
    const w = globalThis as unknown as InPage;
    const count = (sel: string) => w.document.querySelectorAll(sel).length;
    return {
      layerPaths: count('#layers-chart svg path'),
      layerLabels: Array.from(w.document.querySelectorAll('#layers-chart svg text')).map(
        (t) => t.textContent,
      ),
      treePaths: count('#treemap svg path'),
      layerData: w.strataReport.charts.layers?.getOption().series[0]?.data.length,
      treeData: w.strataReport.charts.treemap?.getOption().series[0]?.data.length,
      // Directories and files shown: the top level and one level below it.
      treeNodes: (w.strataReport.charts.treemap?.getOption().series[0]?.data ?? []).reduce(
        (n, d) => n + 1 + (d.children?.length ?? 0),
        0,
      ),
    };
  });
  await shot(page, 'charts');
  expect(problems).toEqual([]);
  expect(drawn.layerData).toBe(2);
  expect(drawn.treeData).toBeGreaterThan(2);
  expect(drawn.treeNodes).toBeGreaterThan(8);
  expect(drawn.layerPaths).toBeGreaterThan(2);
  expect(drawn.treePaths).toBeGreaterThan(20);
  expect(drawn.layerLabels).toContain('1: INSTALL curl');
  await page.close();
});

test('filtering the package table for curl leaves the curl row; a header sorts it', async () => {
  const { page, problems } = await open(report);
  const rows = page.locator('#packages tbody tr');
  const all = await rows.count();
  expect(all).toBeGreaterThan(80);
  await page.fill('#package-filter', 'curl');
  await shot(page, 'filtered');
  const names = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-name')));
  expect(names).toContain('curl');
  expect(names.length).toBeLessThan(all);
  expect(names.sort()).toEqual(['curl', 'libcurl4']);
  const curl = page.locator('#packages tbody tr[data-name="curl"] td');
  const cells = await curl.allInnerTexts();
  expect(cells[3]).toBe('curl');
  // Its licence, as its SBOM reads it from its machine-readable copyright file.
  expect(cells[4]).toMatch(/^curl\b/);
  expect(cells[5]).toMatch(/KiB$/);
  expect(cells[6]).toBe('1: INSTALL curl');
  await page.fill('#package-filter', '');
  await page.click('#packages th[data-key="size"]');
  const sizes = await page
    .locator('#packages tbody tr td:nth-child(6)')
    .evaluateAll((tds) => tds.slice(0, 2).map((td) => td.textContent));
  expect(sizes[0]).toMatch(/MiB$/);
  expect(problems).toEqual([]);
  await page.close();
});

test('clicking usr/ in the treemap drills into it', async () => {
  const { page, problems } = await open(report);
  const tree = page.locator('#treemap');
  const names = () =>
    page.evaluate(() => {
      const w = globalThis as unknown as InPage;
      return {
        path: w.strataReport.treePath,
        top: w.strataReport.charts.treemap?.getOption().series[0]?.data.map((d) => d.name),
      };
    });
  const before = await names();
  expect(before.path).toBe('');
  expect(before.top).toContain('usr');
  const image = await tree.screenshot({ path: path.join(SHOTS, 'treemap-root.png') });
  const usr = page
    .locator('#treemap svg text')
    .filter({ hasText: /^usr\s/ })
    .first();
  await usr.scrollIntoViewIfNeeded();
  const box = await usr.boundingBox();
  expect(box).not.toBeNull();
  if (box) await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  const after = await names();
  const drilled = await tree.screenshot({ path: path.join(SHOTS, 'treemap-usr.png') });
  expect(after.path).toBe('usr');
  expect(after.top).toEqual(expect.arrayContaining(['bin', 'lib', 'share']));
  expect(after.top).not.toContain('usr');
  expect(drilled.equals(image)).toBe(false);
  expect(await page.locator('#tree-path').innerText()).toMatch(/^\/\s*usr\//);
  // The path's first button goes back up.
  await page.locator('#tree-path button').first().click();
  expect((await names()).path).toBe('');
  expect(problems).toEqual([]);
  await page.close();
});

test('file names written to break out of the page stay text', async () => {
  const evil = 'script><img src=x onerror=alert(1)>';
  const plain = makeTinyRootfs(tmpDir('strata-report-a-'));
  const hostile = makeTinyRootfs(tmpDir('strata-report-b-'));
  fs.mkdirSync(path.join(hostile, 'evil<'));
  fs.writeFileSync(path.join(hostile, 'evil<', evil), 'x');
  fs.writeFileSync(path.join(hostile, '<!--'), 'y');
  const tiny = tmpDir('strata-report-tiny-');
  for (const [dir, tag] of [
    [plain, 'tiny:1'],
    [hostile, 'tiny:2'],
  ] as const)
    await strataOk(['template', 'create', dir, '-t', tag, '--name', '</script>'], { store: tiny });
  const out = path.join(work, 'hostile.html');
  await strataOk(['report', 'tiny:2', '--against', 'tiny:1', '-o', out], { store: tiny });
  const { page, problems } = await open(out);
  await shot(page, 'hostile');
  expect(problems).toEqual([]);
  expect(await page.locator('img').count()).toBe(0);
  expect(await page.locator('h1').innerText()).toBe('</script>');
  const files = await page.locator('#diff').innerText();
  expect(files).toContain(`+ evil</${evil} 1 B`);
  expect(files).toContain('+ <!-- 1 B');
  const treemap = await page.evaluate(() =>
    Array.from(
      (globalThis as unknown as InPage).document.querySelectorAll('#treemap svg text'),
    ).map((t) => t.textContent ?? ''),
  );
  expect(treemap.some((t) => t.startsWith('evil<'))).toBe(true);
  await page.close();
});

test('a .tmpl.img file is reported in place; what cannot be read fails with one line', async () => {
  const out = path.join(work, 'file.html');
  const r = await strataOk(['report', BASE_ARCHIVE, '-o', out], { store });
  expect(r.stdout).toMatch(/^wrote .*file\.html \(\d+(\.\d)? MiB\)\n$/);
  const { page, problems } = await open(out);
  expect(problems).toEqual([]);
  expect(await page.locator('#diff-section').isHidden()).toBe(true);
  expect(await page.locator('#packages tbody tr').count()).toBeGreaterThan(80);
  await page.close();
  const missing = await strata(['report', 'no-such:1', '-o', path.join(work, 'x.html')], {
    store,
  });
  expect(missing.code).not.toBe(0);
  expect(isOneLineError(missing.stderr)).toBe(true);
  expect(fs.existsSync(path.join(work, 'x.html'))).toBe(false);
});
