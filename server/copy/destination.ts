/**
 * Where `layerpipe copy` writes: "oci:DIR[:REF]", "dir:DIR" or "oci-archive:FILE[:REF]". Each
 * destination says where a blob's file goes and how the copy is published. Publishing is the
 * last step and a single rename (index.json, manifest.json, the archive): until then readers
 * of the destination see its previous image, whole.
 */
import { InvalidArgumentError } from '../../protocol/errors';
import { splitLayoutReference } from '../transports/oci/layout';
import { publishDir, checkDirDestination } from './dir-destination';
import { publishOciArchive, publishOciLayout, stagingDirFor } from './oci-destination';
import { dirBlobFile, layoutBlobFile } from './paths';
import type { CopyPlan } from './plan';

export type DestinationKind = 'oci' | 'dir' | 'oci-archive';

export interface Destination {
  readonly kind: DestinationKind;
  /** The name as given, for messages. */
  readonly name: string;
  /** Holds OCI manifests and indexes only: Docker ones are converted. */
  readonly ociOnly: boolean;
  /** Refuses a destination that cannot be written to before anything is fetched. */
  prepare(): Promise<void>;
  /** The final file of a blob (a layer or a config). */
  blobFile(digest: string): string;
  /** Writes the manifests and makes the copy the destination's image, last of all. */
  publish(plan: CopyPlan): Promise<void>;
}

const DESTINATION_TRANSPORTS = ['oci', 'dir', 'oci-archive'] as const;

export function parseDestination(name: string): Destination {
  const colon = name.indexOf(':');
  const transport = colon < 0 ? '' : name.slice(0, colon);
  const rest = colon < 0 ? '' : name.slice(colon + 1);
  switch (transport) {
    case 'oci': {
      const { path: dir, ref } = splitLayoutReference(rest, 'oci');
      return {
        kind: 'oci', name, ociOnly: true,
        prepare: async () => {},
        blobFile: (digest) => layoutBlobFile(dir, digest),
        publish: (plan) => publishOciLayout(dir, ref, plan, { keepOtherEntries: true }),
      };
    }
    case 'oci-archive': {
      const { path: file, ref } = splitLayoutReference(rest, 'oci-archive');
      const staging = stagingDirFor(file);
      return {
        kind: 'oci-archive', name, ociOnly: true,
        prepare: async () => {},
        blobFile: (digest) => layoutBlobFile(staging, digest),
        publish: (plan) => publishOciArchive(file, staging, ref, plan),
      };
    }
    case 'dir': {
      if (rest === '') throw new InvalidArgumentError('Invalid dir reference: empty path');
      return {
        kind: 'dir', name, ociOnly: false,
        prepare: () => checkDirDestination(rest),
        blobFile: (digest) => dirBlobFile(rest, digest),
        publish: (plan) => publishDir(rest, plan),
      };
    }
    default:
      throw new InvalidArgumentError(`copy cannot write to ${JSON.stringify(name)}: the destination must be one of ${DESTINATION_TRANSPORTS.map((t) => `${t}:`).join(', ')}`);
  }
}
