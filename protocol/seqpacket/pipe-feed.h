/*
 * The transfer ring shared by PipeFeed (pipe-feed.c, fed from JavaScript) and FilePump
 * (file-pump.c, fed from a file): see pipe-feed.c for the buffer-ownership rules.
 */
#ifndef LAYERPIPE_PIPE_FEED_H
#define LAYERPIPE_PIPE_FEED_H

#include "native.h"

#include <openssl/evp.h>
#include <stddef.h>

typedef struct {
  int pipe_fd;
  unsigned char *ring;
  size_t ring_size, page;
  /* Stream offsets: bytes put in the ring, handed to the pipe, and read by the consumer. */
  uint64_t filled, spliced, consumed;
  EVP_MD_CTX *md; /* NULL when not hashing */
  bool closed;
} feed_t;

/* The OpenSSL digest named by the JS string `v` ('sha256'...); with `nullable`, null names none (*md = NULL). Throws otherwise. */
bool get_digest(napi_env env, napi_value v, bool nullable, const EVP_MD **md);
/* Maps the ring (twice the pipe's buffer) and starts the digest (md may be NULL); 0 or an errno, -1 for a digest failure. */
int feed_init(feed_t *f, int pipe_fd, const EVP_MD *md);
/* Unmaps the ring and frees the digest; idempotent. */
void feed_release(feed_t *f);
/* Learns what the pipe's reader has consumed (FIONREAD): 0 or an errno. */
int feed_refresh(feed_t *f);
/* Free ring bytes, and how many of them are contiguous from the fill point. */
size_t feed_room(const feed_t *f, size_t *contiguous);
bool feed_hash(napi_env env, feed_t *f, const unsigned char *p, size_t n);
/* vmsplices queued bytes (whole pages unless final): 1 all in the pipe, 0 pipe full, or -errno. */
int feed_flush(feed_t *f, bool final);
/* The final digest as lowercase hex into `hex` (EVP_MAX_MD_SIZE * 2 + 1 bytes); false if none. */
bool feed_take_digest(feed_t *f, char *hex);

#endif
