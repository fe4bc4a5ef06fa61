/**
 * Short-name resolution (server/reference/short-names.ts) with registries.conf files read from
 * disk: [aliases], unqualified-search-registries and short-name-mode as
 * containers-registries.conf(5) describes them, and the checks on aliases when a file loads.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { InvalidArgumentError, InvalidConfigError } from '../../protocol/errors';
import { loadRegistriesConfig, type RegistriesConfig } from '../../server/config/registries-conf';
import { parseDockerReference, referenceString } from '../../server/reference/docker-reference';
import { resolveShortName } from '../../server/reference/short-names';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'layerpipe-short-names-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const D = `sha256:${'c'.repeat(64)}`;
let fileNo = 0;

/** The main file `text` plus drop-ins (name -> text) in an otherwise empty /etc/containers stand-in. */
async function load(text: string, dropIns: Record<string, string> = {}): Promise<RegistriesConfig> {
  const dir = path.join(root, `c${++fileNo}`);
  const systemDir = path.join(dir, 'etc');
  fs.mkdirSync(path.join(systemDir, 'registries.conf.d'), { recursive: true });
  fs.writeFileSync(path.join(systemDir, 'registries.conf'), text);
  for (const [name, body] of Object.entries(dropIns)) fs.writeFileSync(path.join(systemDir, 'registries.conf.d', name), body);
  return loadRegistriesConfig({ systemDir, homeDir: path.join(dir, 'home'), env: {} });
}

/** What `input` (as docker:// takes it) resolves to, as strings. */
function resolve(config: RegistriesConfig, input: string): string[] {
  return resolveShortName(parseDockerReference(input), config).map(referenceString);
}

const TWO = 'unqualified-search-registries = ["one.example", "two.example:5000"]\n';

describe('short-name aliases', () => {
  it('resolve a short name to the alias only, keeping its tag or digest', async () => {
    const config = await load(`short-name-mode = "enforcing"\n${TWO}[aliases]\n"app" = "quay.io/ns/app"\n"hub" = "docker.io/hub"\n"v6" = "[::1]:5000/team/v6"\n`);
    assert.deepEqual(resolve(config, 'app'), ['quay.io/ns/app:latest']);
    assert.deepEqual(resolve(config, 'app:v1'), ['quay.io/ns/app:v1']);
    assert.deepEqual(resolve(config, `app@${D}`), [`quay.io/ns/app@${D}`]);
    assert.deepEqual(resolve(config, `app:v1@${D}`), [`quay.io/ns/app:v1@${D}`]);
    assert.deepEqual(resolve(config, 'hub:1'), ['docker.io/library/hub:1'], 'docker.io values are normalised');
    assert.deepEqual(resolve(config, 'v6'), ['[::1]:5000/team/v6:latest']);
  });

  it('match the short name as written, and never a qualified name', async () => {
    const config = await load(`${TWO}[aliases]\n"app" = "quay.io/ns/app"\n"library/tool" = "quay.io/ns/tool"\n`);
    assert.deepEqual(resolve(config, 'library/tool'), ['quay.io/ns/tool:latest']);
    assert.deepEqual(resolve(config, 'tool'), ['one.example/tool:latest', 'two.example:5000/tool:latest']);
    assert.deepEqual(resolve(config, 'library/app'), ['one.example/library/app:latest', 'two.example:5000/library/app:latest']);
    assert.deepEqual(resolve(config, 'docker.io/app'), ['docker.io/library/app:latest']);
    assert.deepEqual(resolve(config, 'localhost/app'), ['localhost/app:latest']);
  });

  it('can be erased by a drop-in, which brings the search back', async () => {
    const config = await load(`${TWO}[aliases]\n"app" = "quay.io/ns/app"\n`, { '50-erase.conf': '[aliases]\n"app" = ""\n' });
    assert.deepEqual(resolve(config, 'app:v1'), ['one.example/app:v1', 'two.example:5000/app:v1']);
  });

  it('are checked when the file loads: short names and fully-qualified values, neither with tag or digest', async () => {
    const refused: [string, RegExp][] = [
      ['"app" = "quay.io/ns/app:v1"', /value "quay.io\/ns\/app:v1" must not contain a tag or digest/],
      [`"app" = "quay.io/ns/app@${D}"`, /must not contain a tag or digest/],
      ['"app" = "ns/app"', /must be a fully-qualified name/],
      ['"app" = "quay.io/Ns/app"', /is not a valid image name/],
      ['"app:v1" = "quay.io/ns/app"', /name must not contain a tag or digest/],
      ['"App" = "quay.io/ns/app"', /name is not a valid image name/],
      ['"quay.io/app" = "quay.io/ns/app"', /name must be a short name/],
      ['"localhost/app" = "quay.io/ns/app"', /name must be a short name/],
      ['"[::1]/app" = "quay.io/ns/app"', /name must be a short name/],
    ];
    for (const [line, why] of refused) {
      await assert.rejects(load(`[aliases]\n${line}\n`), (e: unknown) => e instanceof InvalidConfigError && /alias/.test(e.message) && why.test(e.message), line);
    }
  });
});

describe('short-name-mode and unqualified-search-registries', () => {
  it('enforcing refuses to guess between several search registries, naming the files', async () => {
    const config = await load(`short-name-mode = "enforcing"\n${TWO}`);
    assert.throws(() => resolve(config, 'app:v1'), (e: unknown) =>
      e instanceof InvalidArgumentError &&
      e.message.startsWith('short-name resolution enforced but cannot prompt without a TTY') &&
      e.message.includes('one.example, two.example:5000') && e.message.includes(config.files[0]!));
    assert.deepEqual(resolve(config, 'one.example/app'), ['one.example/app:latest'], 'qualified names are not short');
  });

  it('enforcing uses a single search registry: nothing is ambiguous', async () => {
    const config = await load('short-name-mode = "enforcing"\nunqualified-search-registries = ["docker.io"]\n');
    assert.deepEqual(resolve(config, 'app'), ['docker.io/library/app:latest']);
    assert.deepEqual(resolve(config, `team/app@${D}`), [`docker.io/team/app@${D}`]);
  });

  it('permissive (the default) and disabled try every search registry in order', async () => {
    for (const mode of ['', 'short-name-mode = "permissive"\n', 'short-name-mode = "disabled"\n']) {
      const config = await load(`${mode}${TWO}`);
      assert.deepEqual(resolve(config, `app@${D}`), [`one.example/app@${D}`, `two.example:5000/app@${D}`], mode);
    }
  });

  it('with no alias and no search registry, keeps docker.io in every mode', async () => {
    for (const mode of ['enforcing', 'permissive', 'disabled']) {
      const config = await load(`short-name-mode = "${mode}"\nunqualified-search-registries = []\n`);
      assert.deepEqual(resolve(config, 'busybox'), ['docker.io/library/busybox:latest'], mode);
    }
  });

  it('accepts IPv6 literal search registries and refuses names that become too long', async () => {
    const config = await load('unqualified-search-registries = ["[fd00::1]:5000", "[::1]"]\n');
    assert.deepEqual(resolve(config, 'ns/app:v1'), ['[fd00::1]:5000/ns/app:v1', '[::1]/ns/app:v1']);
    const long = await load(`unqualified-search-registries = ["${'r'.repeat(40)}.example"]\n`);
    assert.throws(() => resolve(long, `${'x/'.repeat(110)}x`), (e: unknown) => e instanceof InvalidArgumentError && /255 characters/.test(e.message));
  });
});
