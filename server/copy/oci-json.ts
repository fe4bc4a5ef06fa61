/**
 * OCI index JSON as containers/image's Go structs marshal it (member order, omitted empty
 * members), so that what layerpipe writes has the digests skopeo's output has.
 */
import { goJsonString } from '../image/config';
import { MediaTypes } from '../image/manifest';
import type { Descriptor, Platform } from '../image/types';

/** A platform as Go's imgspecv1.Platform marshals it. */
function encodePlatform(p: Platform): string {
  const parts = [`"architecture":${goJsonString(p.architecture)}`, `"os":${goJsonString(p.os)}`];
  if (p['os.version'] !== undefined && p['os.version'] !== '') parts.push(`"os.version":${goJsonString(p['os.version'])}`);
  if (p['os.features'] !== undefined && p['os.features'].length > 0) parts.push(`"os.features":[${p['os.features'].map(goJsonString).join(',')}]`);
  if (p.variant !== undefined && p.variant !== '') parts.push(`"variant":${goJsonString(p.variant)}`);
  return `{${parts.join(',')}}`;
}

/** A descriptor as Go's imgspecv1.Descriptor marshals it (member order and omissions). */
export function encodeIndexEntry(d: Descriptor): string {
  const parts = [`"mediaType":${goJsonString(d.mediaType)}`, `"digest":${goJsonString(d.digest)}`, `"size":${d.size}`];
  if (d.urls !== undefined && d.urls.length > 0) parts.push(`"urls":[${d.urls.map(goJsonString).join(',')}]`);
  if (d.annotations !== undefined && Object.keys(d.annotations).length > 0) {
    const sorted = Object.keys(d.annotations).sort();
    parts.push(`"annotations":{${sorted.map((k) => `${goJsonString(k)}:${goJsonString(d.annotations![k]!)}`).join(',')}}`);
  }
  if (d.platform !== undefined) parts.push(`"platform":${encodePlatform(d.platform)}`);
  return `{${parts.join(',')}}`;
}

/** An OCI index naming `entries`, as containers/image serialises one it built or updated. */
export function ociIndexBytes(entries: readonly Descriptor[]): Buffer {
  return Buffer.from(`{"schemaVersion":2,"mediaType":${goJsonString(MediaTypes.ociIndex)},"manifests":[${entries.map(encodeIndexEntry).join(',')}]}`, 'utf8');
}

/** index.json of an OCI layout: no mediaType member, as skopeo 1.9.3 writes it. */
export function layoutIndexBytes(entries: readonly Descriptor[]): Buffer {
  return Buffer.from(`{"schemaVersion":2,"manifests":[${entries.map(encodeIndexEntry).join(',')}]}`, 'utf8');
}
