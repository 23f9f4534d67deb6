import {
  ContentSource,
  Image,
  ImageIndex,
  InvalidArgumentError,
  Reference,
  Selector,
  assertValid,
  formatReference,
  imageOf,
  parseJson,
  resolveManifest,
  validateIndex,
} from '@strata/oci';
import { RegistryClient } from './client';
import { registryContent } from './content';
import type { TransportOptions } from './transport';

/** An image read in place from a registry; `close` ends its connections. */
export interface RemoteImage {
  image: Image;
  /** The repository as a backend of the core: what refers to the image is read through it. */
  content: ContentSource;
  close(): void;
}

/**
 * The image `source` names, read from its registry as a backend of the core, without storing or
 * tagging anything: the manifest is fetched now (of an index: the one selectManifest picks for
 * `sel`), and each blob only when it is read, verified as it streams.
 */
export async function openRemoteImage(
  source: Reference,
  sel: Selector,
  opts: Omit<TransportOptions, 'registry'> = {},
): Promise<RemoteImage> {
  const what = formatReference(source);
  if (!source.registry) {
    throw new InvalidArgumentError(`${what} names no registry`, {
      hint: 'use <registry>/<repository>[:<tag>|@<digest>]',
    });
  }
  const client = new RegistryClient({
    ...opts,
    registry: source.registry,
    repository: source.repository,
    actions: ['pull'],
  });
  try {
    const content = registryContent(client);
    const named = await client.getNamedManifest(source.digest ?? source.tag ?? 'latest');
    const d = await resolveManifest(
      named.descriptor,
      sel,
      async () => assertValid(validateIndex, parseJson(named.bytes, what), what) as ImageIndex,
      what,
    );
    return { image: imageOf(content, d), content, close: () => client.close() };
  } catch (e) {
    client.close();
    throw e;
  }
}
