/**
 * Short names ("busybox", "team/app:v1") in containers-registries.conf(5) [aliases]: which
 * names and values the man page allows.
 */
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
