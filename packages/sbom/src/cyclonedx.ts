import { createHash } from 'node:crypto';
import { Enums, Models, Serialize, Spec } from '@cyclonedx/cyclonedx-library';
import { digestHex } from '@strata/oci';
import { ORIGIN_NOTE, SHADOWED_NOTE } from './inventory';
import type { Inventory, SbomPackage } from './inventory';

/** The CycloneDX version Strata writes. */
export const CYCLONEDX_SPEC = Spec.Spec1dot6;

/** A UUID (RFC 9562 layout, version 5 bits) made from the template's digest: one per template. */
function serialNumber(digest: string): string {
  const h = createHash('sha256').update(`strata sbom ${digest}`).digest();
  h[6] = ((h[6] as number) & 0x0f) | 0x50;
  h[8] = ((h[8] as number) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `urn:uuid:${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function licensesOf(p: SbomPackage): Models.License[] {
  const l = p.license;
  if (l.expression === undefined) return [];
  if (l.kind === 'text') {
    const e = l.extracted[0];
    return [
      new Models.NamedLicense(l.expression, {
        ...(e !== undefined ? { text: new Models.Attachment(e.text) } : {}),
      }),
    ];
  }
  return [new Models.LicenseExpression(l.expression)];
}

function component(p: SbomPackage): Models.Component {
  const props = [
    new Models.Property('debian:architecture', p.architecture),
    new Models.Property('debian:source', p.source),
    new Models.Property('debian:source-version', p.sourceVersion ?? p.version),
  ];
  if (p.state !== undefined) props.push(new Models.Property('debian:state', p.state));
  if (p.shadowed) {
    props.push(new Models.Property('strata:shadowed', 'true'));
    props.push(new Models.Property('strata:shadowed-note', SHADOWED_NOTE));
  }
  if (p.origin !== undefined) {
    props.push(new Models.Property('strata:origin', p.origin));
    props.push(new Models.Property('strata:origin-note', ORIGIN_NOTE[p.origin]));
  }
  for (const [prop, used] of [
    ['debian:built-using', p.builtUsing],
    ['debian:static-built-using', p.staticBuiltUsing],
  ] as const) {
    for (const u of used ?? []) props.push(new Models.Property(prop, u.replace('=', ' (= ') + ')'));
  }
  if (p.layer !== undefined) {
    props.push(new Models.Property('strata:layer', p.layer.digest));
    props.push(new Models.Property('strata:layer-index', String(p.layer.index)));
  }
  if (p.filesSha256 !== undefined) {
    props.push(new Models.Property('strata:files', String(p.files)));
    props.push(
      new Models.Property(
        'strata:files-checksum',
        "sha256 of dpkg's md5sums lines, sorted by path (docs/sbom.md)",
      ),
    );
  }
  const hashes = new Models.HashDictionary();
  if (p.filesSha256 !== undefined) hashes.set(Enums.HashAlgorithm['SHA-256'], p.filesSha256);
  const m = p.maintainer;
  const c = new Models.Component(Enums.ComponentType.Library, p.name, {
    bomRef: p.purl,
    ...(m !== undefined
      ? {
          publisher: m.email ? `${m.name} <${m.email}>` : m.name,
          supplier: new Models.OrganizationalEntity({
            name: m.name,
            contact: new Models.OrganizationalContactRepository([
              new Models.OrganizationalContact({
                name: m.name,
                ...(m.email ? { email: m.email } : {}),
              }),
            ]),
          }),
        }
      : {}),
    version: p.version,
    purl: p.purl,
    hashes,
    licenses: new Models.LicenseRepository(licensesOf(p)),
    properties: new Models.PropertyRepository(props),
  });
  return c;
}

/**
 * The CycloneDX (1.6) document of a template, JSON, built with the CycloneDX library: the
 * template as `metadata.component` (a container), its Debian packages as components (purl,
 * the files checksum as SHA-256, licences, the layer that installed each as a property), and
 * the base chain as dependencies (the template on its direct base, each base on the one below
 * it). Dated by the template's build date, with a serial number made from its digest.
 */
export function toCycloneDx(inv: Inventory, tool = 'strata'): string {
  const top = new Models.Component(Enums.ComponentType.Container, inv.name, {
    bomRef: `template:${inv.digest}`,
    version: inv.digest,
    hashes: new Models.HashDictionary([[Enums.HashAlgorithm['SHA-256'], digestHex(inv.digest)]]),
    properties: new Models.PropertyRepository([
      new Models.Property('strata:platform', inv.platform),
      ...inv.layers.map(
        (l) =>
          new Models.Property(`strata:layer:${l.index}`, `${l.digest} ${l.createdBy ?? ''}`.trim()),
      ),
    ]),
  });
  const bom = new Models.Bom({
    serialNumber: serialNumber(inv.digest),
    metadata: new Models.Metadata({
      timestamp: new Date(inv.created),
      tools: new Models.Tools({
        components: new Models.ComponentRepository([
          new Models.Component(Enums.ComponentType.Application, tool),
        ]),
      }),
      component: top,
    }),
  });
  let below = top;
  for (const b of [...inv.baseChain].reverse()) {
    const base = new Models.Component(Enums.ComponentType.Container, b.name, {
      bomRef: `template:${b.digest}`,
      version: b.digest,
      hashes: new Models.HashDictionary([[Enums.HashAlgorithm['SHA-256'], digestHex(b.digest)]]),
      properties: new Models.PropertyRepository([new Models.Property('strata:ref', b.ref)]),
    });
    bom.components.add(base);
    below.dependencies.add(base.bomRef);
    below = base;
  }
  for (const p of inv.packages) {
    const c = component(p);
    bom.components.add(c);
    top.dependencies.add(c.bomRef);
  }
  const serializer = new Serialize.JsonSerializer(
    new Serialize.JSON.Normalize.Factory(CYCLONEDX_SPEC),
  );
  return serializer.serialize(bom, { sortLists: true, space: 2 });
}
