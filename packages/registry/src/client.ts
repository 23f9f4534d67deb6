import type { Readable } from 'node:stream';
import type { Descriptor, Digest, MediaType } from '@strata/oci';
import { repositoryScope } from './challenge';
import * as download from './download';
import * as manifests from './manifests';
import { Action, Repo, checkRepository, hasBlob } from './repository';
import { Transport, TransportOptions } from './transport';
import * as upload from './upload';

// The names a client's calls take and give, for code that imports them with the client.
export type { FetchedManifest } from './manifests';
export { isIndexMediaType, isManifestMediaType } from './manifests';
/** What a pull did with one blob: the store's sink decides. */
export type { StoreOutcome as PullOutcome } from '@strata/store';
export type { OpenBlob, PushBlobOptions, PushOutcome } from './upload';
export type { Action, ProgressFn } from './repository';

export interface RegistryClientOptions extends TransportOptions {
  repository: string;
  /** Scopes to ask for. Default pull only. */
  actions?: Action[];
}

/**
 * A client for one repository on one registry, per the OCI distribution spec. Every call is
 * lazy: nothing is fetched until asked for, and blob bodies stream. The requests themselves are
 * in upload.ts, download.ts and manifests.ts.
 */
export class RegistryClient implements Repo {
  readonly transport: Transport;
  readonly repository: string;
  readonly scope: string;

  constructor(opts: RegistryClientOptions, transport?: Transport) {
    checkRepository(opts.repository);
    this.transport = transport ?? new Transport(opts);
    this.repository = opts.repository;
    this.scope = repositoryScope(opts.repository, opts.actions ?? ['pull']);
  }

  get registry(): string {
    return this.transport.registry;
  }

  /** A client for another repository on the same registry, sharing connections and tokens. */
  forRepository(repository: string, actions: Action[] = ['pull']): RegistryClient {
    return new RegistryClient({ registry: this.registry, repository, actions }, this.transport);
  }

  close(): void {
    this.transport.close();
  }

  /** Check that the registry answers and accepts our credentials (what `strata login` does). */
  async checkAuth(): Promise<void> {
    await this.transport.request({
      method: 'GET',
      url: '/v2/',
      scopes: [],
      expect: [200],
      what: 'GET /v2/',
    });
  }

  /** HEAD a blob: its size when the repository has it, undefined otherwise. */
  hasBlob(digest: Digest): Promise<number | undefined> {
    return hasBlob(this, digest);
  }

  /** Upload a blob unless the repository already has it (see upload.pushBlob). */
  pushBlob(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    open: upload.OpenBlob,
    opts: upload.PushBlobOptions = {},
  ): Promise<upload.PushOutcome> {
    return upload.pushBlob(this, desc, open, opts);
  }

  /** POST an upload session; resolves to its absolute Location. */
  startUpload(): Promise<string> {
    return upload.startUpload(this);
  }

  /** Cancel an upload session; best effort. */
  cancelUpload(session: Promise<string>): Promise<void> {
    return upload.cancelUpload(this, session);
  }

  /** Stream a blob, verified at EOF (see download.fetchBlob). Nothing is written anywhere. */
  fetchBlob(desc: Pick<Descriptor, 'digest' | 'size'>): Promise<Readable> {
    return download.fetchBlob(this, desc);
  }

  /** Fetch a manifest or index by tag or digest, verified (see manifests.getManifest). */
  getManifest(reference: string): Promise<manifests.FetchedManifest> {
    return manifests.getManifest(this, reference);
  }

  /** {@link getManifest}, with a 404 said in words (see manifests.getNamedManifest). */
  getNamedManifest(reference: string): Promise<manifests.FetchedManifest> {
    return manifests.getNamedManifest(this, reference);
  }

  /** HEAD a manifest: its descriptor, or undefined when the tag or digest is unknown. */
  headManifest(reference: string): Promise<Descriptor | undefined> {
    return manifests.headManifest(this, reference);
  }

  /** PUT a manifest or index under a tag or its digest. The registry's digest must match ours. */
  putManifest(reference: string, bytes: Buffer, mediaType: MediaType): Promise<Descriptor> {
    return manifests.putManifest(this, reference, bytes, mediaType);
  }

  /** All tags of the repository (see manifests.tagList). */
  tagList(pageSize = 1000, strict = false): Promise<string[]> {
    return manifests.tagList(this, pageSize, strict);
  }
}
