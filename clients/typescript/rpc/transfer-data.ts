/**
 * `transfer/data` read straight from a message's bytes, as layerpipe lays it out (nearly every
 * message of a stream transfer): the transfer id and the byte range of the base64, found
 * without JSON.parse and without making a string of the base64. Making those strings (UTF-8 or
 * latin1) cost the client more than everything else a chunk takes; the base64 is decoded from
 * the bytes instead (in-band.ts). A transport that recognises such a message hands it to a
 * TransferDataTap rather than to vscode-jsonrpc, which saves its per-message queue turn too.
 * Anything else, or anything unexpected in it, is left to be parsed as JSON.
 */

/** Receives the base64 text (its bytes, valid only during the call) of one `transfer/data`. */
export type TransferDataTap = (transfer: number, text: Buffer) => void;

const DATA_HEAD = Buffer.from('{"jsonrpc":"2.0","method":"transfer/data","params":{"transfer":');
const DATA_MIDDLE = Buffer.from(',"data":"');
const DATA_TAIL = Buffer.from('"}}');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The transfer id and base64 text of a `transfer/data` message laid out as layerpipe writes it; undefined for anything else. */
export function transferDataText(body: Buffer): { transfer: number; text: Buffer } | undefined {
  if (body.length < DATA_HEAD.length + DATA_MIDDLE.length + DATA_TAIL.length || body.compare(DATA_HEAD, 0, DATA_HEAD.length, 0, DATA_HEAD.length) !== 0) return undefined;
  let at = DATA_HEAD.length;
  let transfer = 0;
  const digitsStart = at;
  while (at < body.length && body[at]! >= 0x30 && body[at]! <= 0x39 && at - digitsStart < 15) transfer = transfer * 10 + (body[at++]! - 0x30);
  if (at === digitsStart || body.compare(DATA_MIDDLE, 0, DATA_MIDDLE.length, at, at + DATA_MIDDLE.length) !== 0) return undefined;
  const start = at + DATA_MIDDLE.length;
  const end = body.length - DATA_TAIL.length;
  if (end < start || body.compare(DATA_TAIL, 0, DATA_TAIL.length, end) !== 0) return undefined;
  // The string must end where the tail starts and hold no escape: then its bytes are its characters.
  if (body.indexOf(QUOTE, start) !== end || body.indexOf(BACKSLASH, start) !== -1) return undefined;
  return { transfer, text: body.subarray(start, end) };
}

/** Where a reader sends the `transfer/data` messages it recognises; until a tap is set, they travel as messages. */
export class TransferDataRoute {
  private tap: TransferDataTap | undefined;

  set(tap: TransferDataTap): void {
    this.tap = tap;
  }

  /** True when `body` was a recognised `transfer/data` and went to the tap. */
  route(body: Buffer): boolean {
    if (this.tap === undefined) return false;
    const data = transferDataText(body);
    if (data === undefined) return false;
    this.tap(data.transfer, data.text);
    return true;
  }
}
