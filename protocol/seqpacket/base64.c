/*
 * base64Encode(src, dst, offset): the standard base64 of `src` (padded) written into `dst` at
 * `offset`; returns the offset after it. Protocol 1.0's in-band payload encodes every byte it
 * streams: Node 20's Buffer.toString('base64') ran under 100 MB/s on the project machine.
 */
#include "native.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool get_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *base = NULL;
  napi_value buffer;
  size_t offset = 0;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, v, &type, length, &base, &buffer, &offset) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", what);
    return false;
  }
  *data = base;
  return true;
}

static napi_value js_base64_encode(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  int64_t offset;
  if (!get_args(env, info, 3, argv, NULL) || !get_bytes(env, argv[0], "src must be a Uint8Array", &src, &src_len) ||
      !get_bytes(env, argv[1], "dst must be a Uint8Array", &dst, &dst_len) ||
      !get_int(env, argv[2], "offset", INT64_MAX, false, &offset)) return NULL;
  size_t need = (src_len + 2) / 3 * 4;
  if ((uint64_t)offset > dst_len || dst_len - (size_t)offset < need) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "dst has no room for the encoding at offset");
    return NULL;
  }
  uint8_t *o = dst + offset;
  size_t i = 0;
  for (; i + 2 < src_len; i += 3) {
    uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
    o[0] = ALPHABET[v >> 18];
    o[1] = ALPHABET[(v >> 12) & 63];
    o[2] = ALPHABET[(v >> 6) & 63];
    o[3] = ALPHABET[v & 63];
    o += 4;
  }
  if (i < src_len) {
    bool two = i + 1 < src_len;
    uint32_t v = (uint32_t)src[i] << 16 | (two ? (uint32_t)src[i + 1] << 8 : 0);
    o[0] = ALPHABET[v >> 18];
    o[1] = ALPHABET[(v >> 12) & 63];
    o[2] = two ? ALPHABET[(v >> 6) & 63] : '=';
    o[3] = '=';
    o += 4;
  }
  CHECK(env, napi_create_int64(env, (int64_t)(o - dst), &result));
  return result;
}

bool define_base64_functions(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {FN("base64Encode", js_base64_encode)};
  return napi_define_properties(env, exports, 1, props) == napi_ok;
}
