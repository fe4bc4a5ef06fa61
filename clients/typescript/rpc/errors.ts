/** Errors a 1.0 call rejects with: the proxy's JSON-RPC error object, kept whole. */
import { LayerpipeError } from '../../../protocol/errors';
import { RpcErrorCodes, type RpcError, type RpcErrorData } from '../../../protocol/jsonrpc';

export class ProxyRpcError extends LayerpipeError {
  override readonly code = 'LP_ERR_PROXY_RPC';
  override name = 'ProxyRpcError';
  /** The JSON-RPC error code (RpcErrorCodes). */
  readonly rpcCode: number;
  /** The error's `data`, when the proxy sent one: the 0.2.x error_code and the layerpipe kind. */
  readonly data: RpcErrorData | undefined;

  constructor(readonly method: string, error: RpcError) {
    super(error.message);
    this.rpcCode = error.code;
    this.data = error.data;
  }

  /** The proxy says trying again may succeed. */
  get retryable(): boolean {
    return this.rpcCode === RpcErrorCodes.Retryable || this.data?.error_code === 'retryable';
  }

  get cancelled(): boolean {
    return this.rpcCode === RpcErrorCodes.Cancelled;
  }
}

export function rpcErrorFrom(method: string, error: RpcError): ProxyRpcError {
  return new ProxyRpcError(method, error);
}
