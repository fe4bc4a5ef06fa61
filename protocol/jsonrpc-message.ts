/**
 * What tells a protocol 1.0 message from a 0.2.x one, and 1.0's size bound: all a proxy needs of
 * protocol 1.0 to pick the wire from a connection's first packet (server/wires/detect.ts), kept
 * apart from jsonrpc.ts so that a 0.2.x proxy starts without 1.0's declarations and their library.
 */

/** Largest JSON-RPC message either side sends or accepts (a larger one is refused, the connection keeps serving). */
export const MAX_MESSAGE_SIZE_1 = 1024 * 1024;

/**
 * True when `message` (one parsed packet or frame) is 1.0: an object with "jsonrpc": "2.0", or a
 * batch of them (which the 1.0 wire then refuses with -32600). How a connection's first packet picks the wire.
 */
export function isJsonRpcMessage(message: unknown): boolean {
  const first: unknown = Array.isArray(message) ? message[0] : message;
  return typeof first === 'object' && first !== null && (first as { jsonrpc?: unknown }).jsonrpc === '2.0';
}
