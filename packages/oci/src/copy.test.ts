import { Readable } from 'node:stream';
import { ContentSink, copyGraph, pool } from './copy';
import { Digest, sha256 } from './digest';
import type { ContentSource } from './image';
import { MediaTypes } from './media-types';
import type { Descriptor, ImageIndex } from './types';

describe('pool', () => {
  it('runs at most n at once and rethrows the first failure', async () => {
    let live = 0;
    let peak = 0;
    await pool([1, 2, 3, 4, 5, 6], 2, async () => {
      peak = Math.max(peak, ++live);
      await new Promise((r) => setTimeout(r, 5));
      live--;
    });
    expect(peak).toBe(2);
    await expect(
      pool([1, 2, 3], 2, async (i) => {
        if (i === 2) throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
  });
});

describe('copyGraph', () => {
  const json = (x: unknown): Buffer => Buffer.from(JSON.stringify(x));
  const put = (blobs: Map<Digest, Buffer>, bytes: Buffer, mediaType: string): Descriptor => {
    const d = { mediaType, digest: sha256(bytes), size: bytes.length } as Descriptor;
    blobs.set(d.digest, bytes);
    return d;
  };
  /** An index of two images, each with a config and a layer, in memory. */
  const graph = () => {
    const blobs = new Map<Digest, Buffer>();
    const images = ['amd64', 'arm64'].map((architecture) => {
      const config = put(blobs, json({ architecture, os: 'linux' }), MediaTypes.imageConfig);
      const layer = put(blobs, Buffer.from(`layer of ${architecture}`), MediaTypes.layerTar);
      const m = { schemaVersion: 2, mediaType: MediaTypes.imageManifest, config, layers: [layer] };
      return put(blobs, json(m), MediaTypes.imageManifest);
    });
    const index = { schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: images };
    return { blobs, root: put(blobs, json(index), MediaTypes.imageIndex) };
  };
  /** A source that counts what it is asked for, and a sink that keeps what it is given. */
  const backends = (blobs: Map<Digest, Buffer>) => {
    const reads: Digest[] = [];
    const src: ContentSource = {
      readBlob: async (d) => (reads.push(d.digest), blobs.get(d.digest) as Buffer),
      openBlob: async (d) => (reads.push(d.digest), Readable.from([blobs.get(d.digest) as Buffer])),
      openDecompressed: () => Promise.reject(new Error('a copy never decompresses')),
    };
    const held = new Map<Digest, Buffer>();
    const sink: ContentSink<'put' | 'present'> = {
      putBlob: async (d, s) => {
        if (held.has(d.digest)) return { outcome: 'present', bytes: 0 };
        const chunks: Buffer[] = [];
        for await (const c of await s.openBlob(d)) chunks.push(c as Buffer);
        held.set(d.digest, Buffer.concat(chunks));
        return { outcome: 'put', bytes: d.size };
      },
      putManifest: async (node) => void held.set(node.descriptor.digest, node.bytes),
      heldManifest: async (d) => held.get(d.digest),
    };
    return { reads, src, sink, held };
  };

  it('copies an index, blobs before manifests, and a repeat copy reads no manifest again', async () => {
    const { blobs, root } = graph();
    const { reads, src, sink, held } = backends(blobs);
    const first = await copyGraph(src, sink, root);
    expect(first.manifests.map((m) => m.descriptor.digest).pop()).toBe(root.digest);
    expect([...held.keys()].sort()).toEqual([...blobs.keys()].sort());
    expect(reads).toHaveLength(blobs.size); // every blob and manifest read once
    reads.length = 0;
    const events: string[] = [];
    await copyGraph(src, sink, root, {
      onEvent: (e) => e.type === 'done' && events.push(e.outcome),
    });
    expect(reads).toEqual([]);
    expect(events).toEqual(['present', 'present', 'present', 'present']);
  });

  it('fetches from the source a manifest the sink does not hold', async () => {
    const { blobs, root } = graph();
    const { reads, src, sink, held } = backends(blobs);
    await copyGraph(src, sink, root);
    const child = (JSON.parse((blobs.get(root.digest) as Buffer).toString()) as ImageIndex)
      .manifests[1] as Descriptor;
    held.delete(child.digest);
    reads.length = 0;
    await copyGraph(src, sink, root);
    expect(reads).toEqual([child.digest]);
    expect(held.get(child.digest)).toEqual(blobs.get(child.digest));
  });

  it('copies the referrers of each manifest after their subject, with their blobs', async () => {
    const { blobs, root } = graph();
    const child = (JSON.parse((blobs.get(root.digest) as Buffer).toString()) as ImageIndex)
      .manifests[0] as Descriptor;
    const empty = put(blobs, Buffer.from('{}'), MediaTypes.empty);
    const artifact = (subject: Descriptor, text: string): Descriptor => {
      const file = put(blobs, Buffer.from(text), MediaTypes.debianPackage);
      const m = {
        schemaVersion: 2,
        mediaType: MediaTypes.imageManifest,
        artifactType: 'application/x-test',
        config: empty,
        layers: [file],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
      };
      return put(blobs, json(m), MediaTypes.imageManifest);
    };
    const onChild = artifact(child, 'on the child');
    const onRoot = artifact(root, 'on the index');
    const attached = new Map([
      [child.digest, [onChild]],
      [root.digest, [onRoot]],
    ]);
    const { src, sink, held } = backends(blobs);
    src.referrers = async (d) => attached.get(d.digest) ?? [];
    const order: Array<[Digest, Digest | undefined]> = [];
    const recording: typeof sink = {
      ...sink,
      putManifest: async (node, tag) => {
        order.push([node.descriptor.digest, node.subject?.digest]);
        return sink.putManifest(node, tag);
      },
    };
    const g = await copyGraph(src, recording, root);
    expect([...held.keys()].sort()).toEqual([...blobs.keys()].sort());
    expect(g.manifests).toHaveLength(5);
    const at = (d: Digest) => order.findIndex(([x]) => x === d);
    expect(at(onChild.digest)).toBeGreaterThan(at(child.digest));
    expect(at(onRoot.digest)).toBeGreaterThan(at(root.digest));
    expect(order.find(([x]) => x === onChild.digest)?.[1]).toBe(child.digest);
    expect(order.find(([x]) => x === onRoot.digest)?.[1]).toBe(root.digest);
    expect(order.find(([x]) => x === child.digest)?.[1]).toBeUndefined();

    // Without them, the same copy leaves the artifacts out.
    const plain = await copyGraph(src, sink, root, { referrers: false });
    expect(plain.manifests.map((m) => m.descriptor.digest)).not.toContain(onRoot.digest);
    expect(plain.manifests).toHaveLength(3);
  });
});
