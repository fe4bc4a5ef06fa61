/**
 * openpgp.js, loaded the first time a signedBy requirement reads keys or checks a signature:
 * it is the largest module layerpipe has (tens of ms to load), and most policies never need it.
 */
import type * as OpenPgp from 'openpgp';

export function openpgpModule(): typeof OpenPgp {
  return require('openpgp') as typeof OpenPgp;
}
