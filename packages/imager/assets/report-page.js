/* global document, window, echarts */
/*
 * The script of a `strata report` page. It reads the report's JSON from the page's
 * application/json script element and builds the page through text nodes only (never HTML
 * strings), so that no name in an image can become markup. Charts are drawn by ECharts, inlined
 * before this script, with its SVG renderer.
 */
'use strict';
(function () {
  const data = JSON.parse(document.getElementById('report-data').textContent);

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof window.Node ? k : String(k));
    return e;
  }

  function bytes(n) {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Math.abs(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i++;
    }
    return `${n < 0 ? '-' : ''}${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
  }

  function signed(n) {
    return `${n < 0 ? '-' : '+'}${bytes(Math.abs(n))}`;
  }

  /** ECharts tooltips are HTML: every name that goes into one is escaped. */
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  function short(s, n) {
    return s.length > n ? `${s.slice(0, n - 1)}…` : s;
  }

  // Header
  const img = data.image;
  const header = document.getElementById('header');
  header.append(el('h1', {}, img.name ? `${img.name}` : img.ref));
  const dl = el('dl');
  const row = (k, ...v) => dl.append(el('dt', {}, k), el('dd', {}, ...v));
  row('Reference', img.ref);
  row('Digest', el('code', {}, img.digest));
  if (img.created) row('Built', img.created);
  row('Report made', data.generated);
  row('Platform', img.platform);
  if (img.platforms) row('Platforms of the template', img.platforms.join(', '));
  if (img.distribution) row('Distribution', img.distribution);
  row('Features', img.features.length ? img.features.join(', ') : '(none)');
  if (img.baseChain.length) {
    const ol = el('ol');
    for (const b of img.baseChain)
      ol.append(el('li', {}, `${b.name} `, el('code', {}, `${b.ref}@${b.digest}`)));
    row('Base chain (root first)', ol);
  } else row('Base chain', '(none: built from scratch)');
  if (img.exclusions.length) {
    const ul = el('ul');
    for (const x of img.exclusions)
      ul.append(
        el('li', {}, el('code', {}, x.pattern), ` ${x.action}, ${x.matched} matched: ${x.reason}`),
      );
    row('Exclusions', ul);
  } else row('Exclusions', '(none)');
  const labels = Object.entries(img.labels);
  if (labels.length) row('Labels', labels.map(([k, v]) => `${k}=${v}`).join(', '));
  row('Packages', String(data.packages.length));
  row('File data', bytes(data.tree.s));
  header.append(dl);

  window.strataReport = { data, charts: {} };

  // Layer sizes
  const layerChart = echarts.init(document.getElementById('layers-chart'), null, {
    renderer: 'svg',
  });
  window.strataReport.charts.layers = layerChart;
  layerChart.setOption({
    animation: false,
    grid: { left: 80, right: 20, top: 20, bottom: 90 },
    tooltip: {
      trigger: 'item',
      formatter: (p) => {
        const l = data.layers[p.dataIndex];
        return [
          `<b>Layer ${l.index}</b>: ${esc(l.createdBy || '(unknown)')}`,
          `${bytes(l.size)} compressed, ${esc(l.mediaType)}`,
          `${l.packagesAdded} packages added or changed, ${l.packagesRemoved} removed`,
          esc(l.digest),
        ].join('<br>');
      },
    },
    xAxis: {
      type: 'category',
      data: data.layers.map((l) => `${l.index}: ${short(l.createdBy || '(unknown)', 28)}`),
      axisLabel: { rotate: 20, interval: 0 },
    },
    yAxis: { type: 'value', axisLabel: { formatter: (v) => bytes(v) } },
    series: [
      {
        type: 'bar',
        name: 'compressed size',
        data: data.layers.map((l) => l.size),
        // A small layer on a large base is a sliver: its size is written on it.
        label: { show: true, position: 'top', formatter: (p) => bytes(p.value) },
      },
    ],
  });

  // Treemap of the flattened tree, one directory at a time, two levels deep
  const treeChart = echarts.init(document.getElementById('treemap'), null, { renderer: 'svg' });
  window.strataReport.charts.treemap = treeChart;
  const nav = document.getElementById('tree-path');
  let trail = [data.tree];

  function toSeries(node, prefix, depth) {
    const path = node.more ? '' : prefix ? `${prefix}/${node.n}` : node.n;
    const out = { name: node.n, value: node.s, path };
    if (node.c && depth > 0) {
      out.children = node.c.map((k) => toSeries(k, path, depth - 1));
      // Its name is on its upper label; a second one would sit under its children's.
      out.label = { show: false };
    }
    return out;
  }

  function currentPath() {
    return trail
      .slice(1)
      .map((t) => t.n)
      .join('/');
  }

  function showTree() {
    const top = trail[trail.length - 1];
    window.strataReport.treePath = currentPath();
    nav.replaceChildren();
    trail.forEach((t, i) => {
      const b = el('button', { type: 'button' }, i === 0 ? '/' : `${t.n}/`);
      b.disabled = i === trail.length - 1;
      b.addEventListener('click', () => {
        trail = trail.slice(0, i + 1);
        showTree();
      });
      nav.append(b);
    });
    nav.append(el('span', { class: 'muted' }, `  ${bytes(top.s)}`));
    const prefix = currentPath();
    treeChart.setOption(
      {
        animation: false,
        tooltip: {
          formatter: (p) =>
            `${esc(p.data.path || p.name)}<br>${bytes(p.value)} (${((100 * p.value) / top.s).toFixed(1)}%)`,
        },
        series: [
          {
            type: 'treemap',
            name: prefix || '/',
            nodeClick: false,
            roam: false,
            breadcrumb: { show: false },
            width: '100%',
            height: '100%',
            top: 0,
            left: 0,
            data: (top.c || []).map((k) => toSeries(k, prefix, 1)),
            label: {
              show: true,
              lineHeight: 15,
              formatter: (p) => `${p.name}\n${bytes(p.value)}`,
            },
            upperLabel: {
              show: true,
              height: 18,
              formatter: (p) => `${p.name}  ${bytes(p.value)}`,
            },
            // Level 0 is the directory shown, whose name and size the path above gives.
            levels: [
              { upperLabel: { show: false } },
              { itemStyle: { borderWidth: 2, gapWidth: 2, borderColor: '#fff' } },
              { itemStyle: { borderWidth: 1, gapWidth: 1 }, colorSaturation: [0.35, 0.6] },
            ],
          },
        ],
      },
      { replaceMerge: ['series'] },
    );
  }

  function drill(path) {
    let node = data.tree;
    const next = [node];
    for (const part of path.split('/')) {
      node = (node.c || []).find((k) => k.n === part && !k.more);
      if (!node || !node.c) break;
      next.push(node);
    }
    trail = next;
    showTree();
  }
  window.strataReport.drill = drill;

  treeChart.on('click', (p) => {
    if (p.data && p.data.path) drill(p.data.path);
  });
  showTree();

  // Package table
  const changed = new Map();
  if (data.diff) {
    for (const p of data.diff.packages.added) changed.set(`${p.name}:${p.architecture}`, 'added');
    for (const p of data.diff.packages.changed)
      changed.set(`${p.name}:${p.architecture}`, 'changed');
  }
  const columns = [
    { key: 'name', title: 'Package' },
    { key: 'version', title: 'Version' },
    { key: 'architecture', title: 'Arch' },
    { key: 'source', title: 'Source' },
    { key: 'licence', title: 'Licence', show: (p) => p.licence || 'unknown' },
    {
      key: 'size',
      title: 'Installed size',
      num: true,
      show: (p) => (p.size === undefined ? '' : bytes(p.size)),
    },
    {
      key: 'layer',
      title: 'Added by layer',
      num: true,
      show: (p) =>
        p.layer === undefined ? '' : `${p.layer}: ${short(data.layers[p.layer].createdBy, 40)}`,
    },
  ];
  const table = document.getElementById('packages');
  const filter = document.getElementById('package-filter');
  const count = document.getElementById('package-count');
  let sort = { key: 'name', dir: 1 };
  const headRow = el('tr');
  for (const c of columns) {
    const th = el('th', { 'data-key': c.key, scope: 'col' }, c.title);
    th.addEventListener('click', () => {
      sort = { key: c.key, dir: sort.key === c.key ? -sort.dir : c.num ? -1 : 1 };
      showPackages();
    });
    headRow.append(th);
  }
  table.tHead.append(headRow);

  function compare(a, b) {
    const x = a[sort.key];
    const y = b[sort.key];
    if (x === y) return 0;
    if (x === undefined) return 1;
    if (y === undefined) return -1;
    return (x < y ? -1 : 1) * sort.dir;
  }

  function showPackages() {
    const q = filter.value.trim().toLowerCase();
    const rows = data.packages
      .filter(
        (p) =>
          !q ||
          [p.name, p.source, p.version, p.licence || ''].some((s) => s.toLowerCase().includes(q)),
      )
      .sort(compare);
    for (const th of headRow.children)
      if (th.dataset.key === sort.key)
        th.setAttribute('aria-sort', sort.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    const body = table.tBodies[0];
    body.replaceChildren(
      ...rows.map((p) => {
        const tr = el('tr', { 'data-name': p.name });
        const mark = changed.get(`${p.name}:${p.architecture}`);
        if (mark) tr.className = mark;
        for (const c of columns)
          tr.append(el('td', c.num ? { class: 'num' } : {}, c.show ? c.show(p) : p[c.key]));
        return tr;
      }),
    );
    count.textContent = `${rows.length} of ${data.packages.length}`;
  }
  filter.addEventListener('input', showPackages);
  showPackages();

  // Changes against --against
  if (data.diff) {
    const d = data.diff;
    document.getElementById('diff-section').hidden = false;
    const box = document.getElementById('diff');
    const p = d.packages;
    const f = d.files;
    const list = (items, fmt) =>
      el('ul', { class: 'files' }, ...items.map((x) => el('li', {}, fmt(x))));
    box.append(
      el(
        'p',
        {},
        'From ',
        el('code', {}, `${d.a.ref} ${d.a.digest}`),
        ' to ',
        el('code', {}, `${d.b.ref} ${d.b.digest}`),
        d.identical ? ': no differences.' : '',
      ),
      el(
        'h3',
        {},
        `Packages: ${p.added.length} added, ${p.removed.length} removed, ${p.changed.length} changed`,
      ),
      list(
        [
          ...p.added.map((x) => ['+', `${x.name} ${x.version} (${x.architecture})`]),
          ...p.removed.map((x) => ['-', `${x.name} ${x.version} (${x.architecture})`]),
          ...p.changed.map((x) => ['~', `${x.name} ${x.old} -> ${x.new} (${x.direction})`]),
        ],
        ([s, t]) =>
          el('span', { class: s === '+' ? 'plus' : s === '-' ? 'minus' : '' }, `${s} ${t}`),
      ),
      el(
        'h3',
        {},
        `Files: ${f.added.length} added, ${f.removed.length} removed, ${f.changed.length} changed`,
      ),
      list(
        [
          ...f.added.map((x) => ['+', `${x.path}  ${x.type === 'file' ? bytes(x.size) : x.type}`]),
          ...f.removed.map((x) => [
            '-',
            `${x.path}  ${x.type === 'file' ? bytes(x.size) : x.type}`,
          ]),
          ...f.changed.map((x) => ['~', `${x.path}  ${x.changes.join(', ')}`]),
        ],
        ([s, t]) =>
          el('span', { class: s === '+' ? 'plus' : s === '-' ? 'minus' : '' }, `${s} ${t}`),
      ),
    );
    if (d.filesOmitted) {
      const o = d.filesOmitted;
      box.append(
        el(
          'p',
          { class: 'muted' },
          `Not listed: ${o.added} added, ${o.removed} removed and ${o.changed} changed files (strata diff lists all).`,
        ),
      );
    }
    box.append(el('h3', {}, `Sizes (file data, directories down to depth ${d.sizes.depth})`));
    const st = el(
      'table',
      { id: 'size-changes' },
      el(
        'tr',
        {},
        el('th', {}, 'Path'),
        el('th', {}, 'Old'),
        el('th', {}, 'New'),
        el('th', {}, 'Change'),
      ),
    );
    for (const s of [{ ...d.sizes.total, path: '(total)' }, ...d.sizes.dirs])
      st.append(
        el(
          'tr',
          {},
          el('td', {}, s.path === '(total)' ? s.path : `${s.path}/`),
          el('td', { class: 'num' }, bytes(s.old)),
          el('td', { class: 'num' }, bytes(s.new)),
          el('td', { class: `num ${s.delta < 0 ? 'minus' : 'plus'}` }, signed(s.delta)),
        ),
      );
    box.append(st);
    const m = d.metadata;
    const meta = [];
    if (m.name) meta.push(`name: ${m.name.old ?? '(none)'} -> ${m.name.new ?? '(none)'}`);
    if (m.platform) meta.push(`platform: ${m.platform.old} -> ${m.platform.new}`);
    for (const x of m.features.added) meta.push(`+ feature ${x}`);
    for (const x of m.features.removed) meta.push(`- feature ${x}`);
    for (const x of m.exclusions.added) meta.push(`+ exclusion ${x.pattern} (${x.action})`);
    for (const x of m.exclusions.removed) meta.push(`- exclusion ${x.pattern} (${x.action})`);
    for (const x of m.exclusions.changed)
      meta.push(`~ exclusion ${x.new.pattern}: ${x.old.action} -> ${x.new.action}`);
    if (m.baseChain) {
      const chain = (c) => (c.length ? c.map((b) => `${b.ref}@${b.digest}`).join(' > ') : '(none)');
      meta.push(`base chain: ${chain(m.baseChain.old)} -> ${chain(m.baseChain.new)}`);
    }
    for (const [k, v] of Object.entries(m.labels.added)) meta.push(`+ label ${k}=${v}`);
    for (const [k, v] of Object.entries(m.labels.removed)) meta.push(`- label ${k}=${v}`);
    for (const [k, v] of Object.entries(m.labels.changed))
      meta.push(`~ label ${k}: ${v.old} -> ${v.new}`);
    box.append(
      el('h3', {}, `Metadata: ${meta.length ? meta.length : 'no'} changes`),
      list(meta, (t) => t),
    );
  }

  window.addEventListener('resize', () => {
    layerChart.resize();
    treeChart.resize();
  });
})();
