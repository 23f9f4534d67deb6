import { digestHex } from '@strata/oci';
import type { ExtractedLicense } from './licenses';
import { ORIGIN_NOTE, SHADOWED_NOTE, debPurl } from './inventory';
import type { Inventory, SbomLayer, SbomPackage } from './inventory';

/*
 * SPDX 2.3 JSON, typed after the official schema (schemas/spdx/spdx-schema.json): only the
 * properties Strata writes, with the schema's names and enums.
 */

export type SpdxRelationshipType = 'DESCRIBES' | 'CONTAINS' | 'DESCENDANT_OF' | 'GENERATED_FROM';

export interface SpdxChecksum {
  algorithm: 'SHA256' | 'MD5' | 'SHA1';
  checksumValue: string;
}

export interface SpdxExternalRef {
  referenceCategory: 'PACKAGE-MANAGER' | 'PERSISTENT-ID' | 'SECURITY' | 'OTHER';
  referenceType: string;
  referenceLocator: string;
  comment?: string;
}

export interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  downloadLocation: string;
  filesAnalyzed?: boolean;
  supplier?: string;
  checksums?: SpdxChecksum[];
  licenseConcluded?: string;
  licenseDeclared?: string;
  licenseComments?: string;
  copyrightText?: string;
  sourceInfo?: string;
  summary?: string;
  comment?: string;
  externalRefs?: SpdxExternalRef[];
  primaryPackagePurpose?:
    | 'OTHER'
    | 'INSTALL'
    | 'ARCHIVE'
    | 'FIRMWARE'
    | 'APPLICATION'
    | 'FRAMEWORK'
    | 'LIBRARY'
    | 'CONTAINER'
    | 'SOURCE'
    | 'DEVICE'
    | 'OPERATING_SYSTEM'
    | 'FILE';
  builtDate?: string;
}

export interface SpdxRelationship {
  spdxElementId: string;
  relationshipType: SpdxRelationshipType;
  relatedSpdxElement: string;
  comment?: string;
}

export interface SpdxExtractedLicensingInfo {
  licenseId: string;
  extractedText: string;
  name?: string;
}

export interface SpdxDocument {
  spdxVersion: 'SPDX-2.3';
  dataLicense: 'CC0-1.0';
  SPDXID: 'SPDXRef-DOCUMENT';
  name: string;
  documentNamespace: string;
  creationInfo: {
    created: string;
    creators: string[];
    licenseListVersion?: string;
    comment?: string;
  };
  packages: SpdxPackage[];
  relationships: SpdxRelationship[];
  hasExtractedLicensingInfos?: SpdxExtractedLicensingInfo[];
  comment?: string;
}

/** Characters an SPDXID may hold after `SPDXRef-`: letters, digits, '.' and '-'. */
function spdxId(kind: string, ...parts: string[]): string {
  return `SPDXRef-${kind}-${parts.join('-').replace(/[^A-Za-z0-9.-]+/g, '-')}`;
}

/** SPDX dates are UTC to the second, without fractions. */
function spdxDate(iso: string): string {
  const d = new Date(iso);
  return (Number.isNaN(d.getTime()) ? new Date(0) : d).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function layerPackage(l: SbomLayer): SpdxPackage {
  return {
    SPDXID: spdxId('Layer', String(l.index), digestHex(l.digest).slice(0, 16)),
    name: `layer ${l.index}`,
    versionInfo: l.digest,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    checksums: [{ algorithm: 'SHA256', checksumValue: digestHex(l.digest) }],
    primaryPackagePurpose: 'ARCHIVE',
    ...(l.createdBy !== undefined ? { comment: `created by: ${l.createdBy}` } : {}),
  };
}

/** SPDX's supplier (`Person: name (email)` or `Organization: …`): dpkg's Maintainer. */
function supplier(p: SbomPackage): string {
  const m = p.maintainer;
  if (m === undefined) return 'NOASSERTION';
  return `${m.organization ? 'Organization' : 'Person'}: ${m.name}${m.email ? ` (${m.email})` : ''}`;
}

function debPackage(p: SbomPackage): SpdxPackage {
  const src =
    p.source === p.name && p.sourceVersion === undefined
      ? `built from source package ${p.source} ${p.version}`
      : `built from source package ${p.source} ${p.sourceVersion ?? p.version}`;
  const layer =
    p.layer !== undefined ? `; installed by layer ${p.layer.index} (${p.layer.digest})` : '';
  const expr = p.license.expression;
  const notes: string[] = [];
  if (p.shadowed) notes.push(SHADOWED_NOTE);
  if (p.origin !== undefined) notes.push(ORIGIN_NOTE[p.origin]);
  if (p.state !== undefined) notes.push(`dpkg state: ${p.state} (its files are in the template)`);
  if (p.filesSha256 !== undefined)
    notes.push(`checksum: sha256 of the ${p.files} lines of dpkg's md5sums, sorted by path`);
  return {
    // A shadowed version is another package than the installed one of that name.
    SPDXID: p.shadowed
      ? spdxId('Package-deb', p.name, p.architecture, p.version, 'shadowed')
      : spdxId('Package-deb', p.name, p.architecture),
    name: p.name,
    versionInfo: p.version,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    supplier: supplier(p),
    ...(p.filesSha256 !== undefined
      ? { checksums: [{ algorithm: 'SHA256', checksumValue: p.filesSha256 }] }
      : {}),
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: expr ?? 'NOASSERTION',
    licenseComments:
      p.license.kind === 'dep5'
        ? `from the machine-readable usr/share/doc/${p.name}/copyright`
        : p.license.kind === 'text'
          ? `usr/share/doc/${p.name}/copyright is not machine-readable: its summary is ${expr}`
          : `no usr/share/doc/${p.name}/copyright in the template`,
    copyrightText: 'NOASSERTION',
    sourceInfo: `${src}${layer}`,
    externalRefs: [
      { referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: p.purl },
    ],
    primaryPackagePurpose: 'INSTALL',
    ...(notes.length > 0 ? { comment: notes.join('; ') } : {}),
  };
}

/**
 * A Debian source package (`name=version`) that a binary's Built-Using names: the binary
 * embeds it, so the document lists it, as a SOURCE with its purl (`arch=source`).
 */
function sourcePackage(used: string, inv: Inventory): SpdxPackage {
  const eq = used.indexOf('=');
  const name = used.slice(0, eq);
  const version = used.slice(eq + 1);
  return {
    SPDXID: spdxId('Source-deb', name, version),
    name,
    versionInfo: version,
    downloadLocation: 'NOASSERTION',
    filesAnalyzed: false,
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: 'NOASSERTION',
    copyrightText: 'NOASSERTION',
    externalRefs: [
      {
        referenceCategory: 'PACKAGE-MANAGER',
        referenceType: 'purl',
        referenceLocator: debPurl(
          { name, version, architecture: 'source', source: name },
          inv.distribution,
        ),
      },
    ],
    primaryPackagePurpose: 'SOURCE',
    comment: 'a Debian source package that Built-Using names: its files are not in the template',
  };
}

/**
 * The SPDX 2.3 document of a template: the template (primary package, a CONTAINER), its base
 * templates (the template DESCENDANT_OF its direct base, each base of the one below it), its
 * layers (the template CONTAINS each) and its Debian packages (the layer that installed one
 * CONTAINS it; the template does when no layer is known), and the source packages their
 * Built-Using names (each binary GENERATED_FROM them). Its namespace and date come from
 * the template, so one template always gives the same document.
 */
export function toSpdx(inv: Inventory, tool = 'strata'): SpdxDocument {
  const hex = digestHex(inv.digest);
  const top = spdxId('Template', inv.name);
  const packages: SpdxPackage[] = [
    {
      SPDXID: top,
      name: inv.name,
      versionInfo: inv.digest,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      checksums: [{ algorithm: 'SHA256', checksumValue: hex }],
      primaryPackagePurpose: 'CONTAINER',
      builtDate: spdxDate(inv.created),
      externalRefs: [
        {
          referenceCategory: 'PACKAGE-MANAGER',
          referenceType: 'purl',
          referenceLocator: `pkg:oci/${encodeURIComponent(inv.name.toLowerCase())}@${encodeURIComponent(inv.digest)}`,
        },
      ],
      comment: `${inv.name} (${inv.platform})`,
    },
  ];
  const relationships: SpdxRelationship[] = [
    { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: top },
  ];
  let below = top;
  for (const b of [...inv.baseChain].reverse()) {
    const id = spdxId('Base', b.name, digestHex(b.digest).slice(0, 16));
    packages.push({
      SPDXID: id,
      name: b.name,
      versionInfo: b.digest,
      downloadLocation: 'NOASSERTION',
      filesAnalyzed: false,
      checksums: [{ algorithm: 'SHA256', checksumValue: digestHex(b.digest) }],
      primaryPackagePurpose: 'CONTAINER',
      comment: `base template ${b.ref}`,
    });
    relationships.push({
      spdxElementId: below,
      relationshipType: 'DESCENDANT_OF',
      relatedSpdxElement: id,
    });
    below = id;
  }
  const layerIds = new Map<number, string>();
  for (const l of inv.layers) {
    const p = layerPackage(l);
    packages.push(p);
    layerIds.set(l.index, p.SPDXID);
    relationships.push({
      spdxElementId: top,
      relationshipType: 'CONTAINS',
      relatedSpdxElement: p.SPDXID,
    });
  }
  const extracted = new Map<string, ExtractedLicense>();
  const embedded = new Map<string, SpdxPackage>();
  const builtUsing: SpdxRelationship[] = [];
  for (const p of inv.packages) {
    const sp = debPackage(p);
    packages.push(sp);
    relationships.push({
      spdxElementId: (p.layer && layerIds.get(p.layer.index)) ?? top,
      relationshipType: 'CONTAINS',
      relatedSpdxElement: sp.SPDXID,
    });
    for (const [field, used] of [
      ['Built-Using', p.builtUsing],
      ['Static-Built-Using', p.staticBuiltUsing],
    ] as const) {
      for (const u of used ?? []) {
        const src = embedded.get(u) ?? sourcePackage(u, inv);
        embedded.set(u, src);
        builtUsing.push({
          spdxElementId: sp.SPDXID,
          relationshipType: 'GENERATED_FROM',
          relatedSpdxElement: src.SPDXID,
          comment: `${field}: ${src.name} (= ${src.versionInfo}): ${p.name} embeds it`,
        });
      }
    }
    for (const e of p.license.extracted) if (!extracted.has(e.id)) extracted.set(e.id, e);
  }
  packages.push(...[...embedded.values()].sort((a, b) => (a.SPDXID < b.SPDXID ? -1 : 1)));
  relationships.push(...builtUsing);
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: `${inv.name} ${inv.platform}`,
    documentNamespace: `https://strata.invalid/sbom/${hex}/spdx`,
    creationInfo: {
      created: spdxDate(inv.created),
      creators: [`Tool: ${tool}`],
      comment: `from the dpkg status, md5sums and copyright files of ${inv.name} (${inv.digest})`,
    },
    packages,
    relationships,
    ...(extracted.size > 0
      ? {
          hasExtractedLicensingInfos: [...extracted.values()]
            .sort((a, b) => (a.id < b.id ? -1 : 1))
            .map((e) => ({ licenseId: e.id, extractedText: e.text, name: e.name })),
        }
      : {}),
  };
}
