import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '@strata/store';
import type { ReportData } from './model';

/** The page's own script and style, kept as plain files next to the package's sources. */
const ASSETS = path.join(__dirname, '..', '..', 'assets');

/**
 * JSON that can sit inside a `<script type="application/json">`: `<`, `>` and `&` are written
 * as JSON escapes, so no file name or label can close the element or open a comment, and U+2028
 * and U+2029 too, which some JavaScript parsers take for line ends. JSON.parse reads it back as
 * it was.
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => {
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/** Text for an HTML element or attribute. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * A script to inline: a `</script` in it (in a string literal, where `<\/` means the same)
 * would end the element early.
 */
export function inlineScript(source: string): string {
  return source.replace(/<\/(script)/gi, '<\\/$1');
}

/** ECharts' minified build, as npm installed it: read when a report is written, never fetched. */
export function echartsSource(): string {
  return fs.readFileSync(require.resolve('echarts/dist/echarts.min.js'), 'utf8');
}

/**
 * The whole report: one HTML file that needs nothing but itself. Its data goes in as JSON,
 * which the page's script reads and shows through the DOM's text nodes and ECharts; the
 * Content-Security-Policy lets it load nothing from anywhere.
 */
export function renderReport(data: ReportData): string {
  const page = fs.readFileSync(path.join(ASSETS, 'report-page.js'), 'utf8');
  const css = fs.readFileSync(path.join(ASSETS, 'report-page.css'), 'utf8');
  const title = `Strata report: ${data.image.name ?? data.image.ref}`;
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${css}</style>`,
    '</head>',
    '<body>',
    '<header id="header"></header>',
    '<main>',
    '<section><h2>Layers</h2><div id="layers-chart" class="chart"></div></section>',
    '<section><h2>Files by size</h2>',
    '<nav id="tree-path" aria-label="directory"></nav>',
    '<div id="treemap" class="chart tall"></div></section>',
    '<section><h2>Packages</h2>',
    '<input id="package-filter" type="search" placeholder="Filter packages" aria-label="Filter packages">',
    '<span id="package-count"></span>',
    '<table id="packages"><thead></thead><tbody></tbody></table></section>',
    '<section id="diff-section" hidden><h2>Changes</h2><div id="diff"></div></section>',
    '</main>',
    `<script type="application/json" id="report-data">${scriptJson(data)}</script>`,
    `<script>${inlineScript(echartsSource())}</script>`,
    `<script>${inlineScript(page)}</script>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/** Write the report to `file` atomically; resolves to its size in bytes. */
export async function writeReport(file: string, data: ReportData): Promise<number> {
  const html = Buffer.from(renderReport(data), 'utf8');
  await writeFileAtomic(file, html);
  return html.length;
}
