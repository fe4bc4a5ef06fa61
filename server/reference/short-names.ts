/**
 * Short names ("busybox", "team/app:v1") as containers-registries.conf(5) resolves them: an
 * alias first, else unqualified-search-registries under short-name-mode. layerpipe never has a
 * terminal to prompt on, so "enforcing" refuses an ambiguous name and "permissive" falls back
 * to trying every search registry, as the man page says for programs without a TTY.
 *
 * With no alias and no search registry, docker.io is used, as skopeo's docker:// always does;
 * the man page does not cover this case (containers/image's pkg/shortnames refuses it, but
 * skopeo never calls that code for docker://).
 */
import { InvalidArgumentError, InvalidConfigError, errorMessage } from '../../protocol/errors';
import { inRegistry, renamed, type DockerReference } from './docker-reference';
import { splitReference } from './grammar';

export type ShortNameMode = 'enforcing' | 'permissive' | 'disabled';

/** The part of the registries configuration short names depend on. */
export interface ShortNameSettings {
  /** Short name (a repository as written, no tag or digest) -> fully-qualified name. */
  readonly aliases: ReadonlyMap<string, string>;
  readonly unqualifiedSearchRegistries: readonly string[];
  readonly shortNameMode: ShortNameMode;
  /** The files the settings came from, for messages. */
  readonly files: readonly string[];
}

/** Why an [aliases] key is not a short name without tag or digest; undefined when it is one. */
export function aliasNameProblem(name: string): string | undefined {
  const split = splitReference(name);
  if (!split.ok) return 'is not a valid image name';
  if (split.parts.domain !== undefined) return 'must be a short name, without a registry';
  if (split.parts.tag !== undefined || split.parts.digest !== undefined) return 'must not contain a tag or digest';
  return undefined;
}

/** Why an [aliases] value is not a fully-qualified name without tag or digest; undefined when it is one. */
export function aliasValueProblem(value: string): string | undefined {
  const split = splitReference(value);
  if (!split.ok) return 'is not a valid image name';
  if (split.parts.domain === undefined) return 'must be a fully-qualified name, with a registry';
  if (split.parts.tag !== undefined || split.parts.digest !== undefined) return 'must not contain a tag or digest';
  return undefined;
}

function where(settings: ShortNameSettings): string {
  return settings.files.length > 0 ? ` in ${settings.files.join(', ')}` : '';
}

/**
 * The fully-qualified references to try for `ref`, in order: `ref` itself unless it is a short
 * name; the alias's target (with the tag or digest given) when an alias names it; else one per
 * search registry, or only docker.io when there are none. Throws InvalidArgumentError when
 * short-name-mode is "enforcing" and more than one search registry would have to be guessed
 * between.
 */
export function resolveShortName(ref: DockerReference, settings: ShortNameSettings): DockerReference[] {
  if (!ref.shortName || ref.shortRepository === undefined) return [ref];
  const short = ref.shortRepository;

  // Tags and digests are not part of the alias lookup; they are carried to the target.
  const alias = settings.aliases.get(short);
  if (alias !== undefined && alias !== '') {
    try {
      return [renamed(ref, alias)];
    } catch (err) {
      throw new InvalidConfigError(`short-name alias ${JSON.stringify(short)} = ${JSON.stringify(alias)}${where(settings)}: ${errorMessage(err)}`, { cause: err });
    }
  }

  const search = settings.unqualifiedSearchRegistries;
  if (search.length === 0) return [ref];
  if (search.length > 1 && settings.shortNameMode === 'enforcing') {
    throw new InvalidArgumentError(
      `short-name resolution enforced but cannot prompt without a TTY: ${JSON.stringify(short)} has no alias and could come from any of ` +
        `the unqualified-search-registries ${search.join(', ')}${where(settings)} (short-name-mode = "enforcing"); ` +
        'use a fully-qualified name or add an [aliases] entry',
    );
  }
  return search.map((registry) => inRegistry(ref, registry));
}
