/* SPDX-License-Identifier: MIT */
/*
 * Capped growable byte buffer. Every buffer has a hard maximum (curl's dynbuf rule): growth
 * past `max` fails with TERN_EOVERFLOW and leaves the contents unchanged. Data lives in
 * [data + off, data + off + len); consuming from the front only moves `off`, and the buffer
 * compacts when it needs the room, so a reader can drain a few bytes at a time cheaply.
 */
#ifndef TERN_COMMON_BUF_H
#define TERN_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct tern_buf {
    uint8_t *data; /* owned; NULL until the first append */
    size_t off;    /* start of unconsumed bytes */
    size_t len;    /* unconsumed bytes */
    size_t cap;    /* allocated bytes */
    size_t max;    /* hard limit on len */
};

void tern_buf_init(struct tern_buf *b, size_t max);
/* Free the storage; the buffer can be reused after tern_buf_init. */
void tern_buf_fini(struct tern_buf *b);

/* Pointer to the first unconsumed byte (may be NULL when empty). */
static inline uint8_t *tern_buf_head(const struct tern_buf *b)
{
    return b->data ? b->data + b->off : NULL;
}

/* Make room for `extra` more bytes after the data; TERN_EOVERFLOW past max, TERN_ENOMEM. */
int tern_buf_reserve(struct tern_buf *b, size_t extra);
/* Pointer to the free space after the data (call tern_buf_reserve first), and its size. */
uint8_t *tern_buf_tail(struct tern_buf *b, size_t *room);
/* Record that n bytes were written at tern_buf_tail(). */
void tern_buf_commit(struct tern_buf *b, size_t n);
/* Append n bytes (copied). */
int tern_buf_append(struct tern_buf *b, const void *src, size_t n);
/* Drop n bytes from the front (n <= len). */
void tern_buf_consume(struct tern_buf *b, size_t n);
/* Drop everything but keep the allocation. */
void tern_buf_reset(struct tern_buf *b);
/* Release the allocation when the buffer is empty and holds more than `keep` bytes. */
void tern_buf_shrink(struct tern_buf *b, size_t keep);

#endif /* TERN_COMMON_BUF_H */
