/**
 * `layerpipe list-tags REPOSITORY`: skopeo list-tags' JSON, {"Repository": ..., "Tags": [...]},
 * through the transports' own tag listing (the proxy's ListTags). Transports skopeo lists
 * tags for: docker:// (the repository's tags) and docker-archive: (the archive's NAME:TAG
 * references); others are refused as skopeo refuses them.
 */
import { UnsupportedError } from '../../../protocol/errors';
import { createLogger } from '../../log';
import { ACCEPT_ANYTHING } from '../../policy/load';
import { parseNormalizedNamed, nameOf } from '../../reference/docker-reference';
import { ResourcePool } from '../../service/resources';
import { listTagsByName } from '../../transports/all';
import { parseFlags, systemContextFrom, UsageError } from '../flags';
import { goJsonPrint } from '../go-json';

/** skopeo's Repository: the normalized repository name for docker://; none (omitted) for an archive. */
function repositoryOf(name: string): { Repository?: string } {
  return name.startsWith('docker://') ? { Repository: nameOf(parseNormalizedNamed(name.slice('docker://'.length))) } : {};
}

export async function run(argv: readonly string[]): Promise<number> {
  const { options, positionals } = parseFlags('list-tags', argv);
  if (positionals.length !== 1) throw new UsageError('Exactly one non-option argument expected: docker://REPOSITORY or docker-archive:FILE');
  const name = positionals[0]!;
  const transport = name.slice(0, Math.max(0, name.indexOf(':')));
  if (transport !== 'docker' && transport !== 'docker-archive') {
    throw new UnsupportedError(`Invalid transport ${JSON.stringify(transport)}: list-tags supports docker:// and docker-archive: only, as skopeo`);
  }
  const resources = new ResourcePool();
  try {
    // Listing reads no image content: no policy, as for skopeo list-tags.
    const ctx = systemContextFrom(options, createLogger(options.debug, { showRetries: true }), resources, ACCEPT_ANYTHING);
    const tags = await listTagsByName(name, ctx, new AbortController().signal);
    process.stdout.write(goJsonPrint({ ...repositoryOf(name), Tags: tags }));
  } finally {
    await resources.close();
  }
  return 0;
}
