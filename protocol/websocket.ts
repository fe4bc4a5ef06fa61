/**
 * Protocol 1.0 on a WebSocket: the framing both sides share (server and browser client; no Node
 * APIs here). Every JSON-RPC message is one text frame. A `stream` transfer's bytes travel as
 * binary frames instead of `transfer/data`, so nothing is base64'd: each binary frame is an
 * 8-byte header, then the bytes. Only the server sends binary frames.
 *
 *   offset 0  u8      frame kind: 1 = transfer data
 *   offset 1  u8[3]   zero
 *   offset 4  u32 BE  the transfer id
 *   offset 8  ...     the next bytes of that transfer, in order (at most MAX_STREAM_CHUNK)
 *
 * The credit window (`transfer/credit`) counts these bytes exactly as it counts decoded
 * `transfer/data` bytes; `transfer/end` still closes the transfer, after its last binary frame.
 */

/** Subprotocol a client offers (and the server selects) for protocol 1.0. */
export const WS_SUBPROTOCOL_1 = 'layerpipe.1';
/**
 * Browsers cannot set Authorization: they offer the token as a second subprotocol entry,
 * `bearer.TOKEN`. The server never selects (echoes) it.
 */
export const WS_TOKEN_PROTOCOL_PREFIX = 'bearer.';
export const WS_DATA_HEADER_BYTES = 8;
export const WS_FRAME_TRANSFER_DATA = 1;
/** Largest transfer id a data frame can name. */
export const WS_MAX_TRANSFER_ID = 0xffff_ffff;

/** Writes the header of a data frame for `transfer` into the first 8 bytes of `frame`. */
export function writeDataHeader(frame: Uint8Array, transfer: number): void {
  const view = new DataView(frame.buffer, frame.byteOffset, WS_DATA_HEADER_BYTES);
  view.setUint32(0, WS_FRAME_TRANSFER_DATA << 24);
  view.setUint32(4, transfer);
}

/** The transfer a data frame names and its bytes, or undefined for a frame that is not one. */
export function readDataFrame(frame: Uint8Array): { transfer: number; bytes: Uint8Array } | undefined {
  if (frame.byteLength < WS_DATA_HEADER_BYTES) return undefined;
  const view = new DataView(frame.buffer, frame.byteOffset, WS_DATA_HEADER_BYTES);
  if (view.getUint32(0) !== WS_FRAME_TRANSFER_DATA << 24) return undefined;
  return { transfer: view.getUint32(4), bytes: frame.subarray(WS_DATA_HEADER_BYTES) };
}
