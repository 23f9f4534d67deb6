import { Annotations, Descriptor, Digest, MediaTypes, Role, ROLES } from '@strata/oci';
import { BundlePart, Store, writeBundle } from '@strata/store';
import { resolveImage, ResolvedImage } from './resolve-image';

export interface BundleParts {
  /** Ref of the target rootfs image (a manifest, or a bundle whose rootfs is taken). */
  rootfs: string;
  /** Ref of the buildchroot image (a manifest, or a bundle whose buildchroot is taken). */
  buildchroot: string;
}

/** A bundle entry for an image: its platform and title, and the ref it was taken from. */
function bundlePart(img: ResolvedImage, ref: string): BundlePart {
  const d = img.descriptor;
  const annotations: Record<string, string> = {};
  const title = img.manifest.annotations?.[Annotations.title] ?? d.annotations?.[Annotations.title];
  if (title !== undefined) annotations[Annotations.title] = title;
  annotations['io.strata.source'] = ref;
  const descriptor: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  descriptor.platform = { architecture: img.config.architecture, os: img.config.os };
  if (img.config.variant !== undefined) descriptor.platform.variant = img.config.variant;
  return { descriptor, annotations };
}

/**
 * Store an OCI index that holds a rootfs image and its buildchroot, each manifest annotated with
 * `io.strata.role`, and tag it. Blobs are shared, not copied: layers the two images have in
 * common are stored (and pushed) once. Either part may itself be a bundle; its image of that
 * role is taken, so a derived template can inherit its parent's buildchroot.
 */
export async function createBundle(
  store: Store,
  tag: string,
  parts: BundleParts,
): Promise<Descriptor> {
  const taken = {} as Record<Role, BundlePart>;
  for (const role of ROLES) {
    const ref = parts[role];
    const img = await resolveImage(store, ref, (await isBundle(store, ref)) ? role : 'rootfs');
    taken[role] = bundlePart(img, ref);
  }
  return store.withLease(async () => {
    const d = await writeBundle(store, taken);
    await store.tag(tag, d);
    return d;
  });
}

async function isBundle(store: Store, ref: string): Promise<boolean> {
  const d = await store.resolve(ref);
  return d.mediaType === MediaTypes.imageIndex;
}

export interface BundleImage {
  role: Role;
  digest: Digest;
  layers: { digest: Digest; size: number; shared: boolean }[];
}

export interface BundleInfo {
  ref: string;
  digest: Digest;
  images: BundleImage[];
  /** Layers present in both images (stored once). */
  shared: { digest: Digest; size: number }[];
}

/** What a bundle holds: each image with its layers, and the layers they share. */
export async function describeBundle(store: Store, ref: string): Promise<BundleInfo> {
  const d = await store.resolve(ref);
  const imgs: ResolvedImage[] = [];
  for (const role of ROLES) imgs.push(await resolveImage(store, ref, role));
  const count = new Map<Digest, number>();
  for (const img of imgs) {
    for (const l of new Set(img.manifest.layers.map((x) => x.digest))) {
      count.set(l, (count.get(l) ?? 0) + 1);
    }
  }
  const images = imgs.map((img, i) => ({
    role: ROLES[i] as Role,
    digest: img.descriptor.digest,
    layers: img.manifest.layers.map((l) => ({
      digest: l.digest,
      size: l.size,
      shared: (count.get(l.digest) ?? 0) > 1,
    })),
  }));
  const shared = (imgs[0]?.manifest.layers ?? [])
    .filter((l) => (count.get(l.digest) ?? 0) > 1)
    .map((l) => ({ digest: l.digest, size: l.size }));
  return { ref, digest: d.digest, images, shared };
}
