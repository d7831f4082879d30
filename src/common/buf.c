/* SPDX-License-Identifier: MIT */
/*
 * Capped growable buffer. Invariants: off + len <= cap; len <= max; data == NULL iff cap == 0.
 * Growth doubles the capacity (bounded by max) so appends are amortised O(1).
 */
#include "common/buf.h"

#include "common/alloc.h"
#include "tern/error.h"

#include <string.h>

void tern_buf_init(struct tern_buf *b, size_t max)
{
    b->data = NULL;
    b->off = 0;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void tern_buf_fini(struct tern_buf *b)
{
    tern_free(b->data);
    tern_buf_init(b, b->max);
}

int tern_buf_reserve(struct tern_buf *b, size_t extra)
{
    if (extra > b->max - b->len) {
        return TERN_EOVERFLOW;
    }
    size_t need = b->len + extra;
    if (b->off + need <= b->cap) {
        return TERN_OK;
    }
    if (need <= b->cap) {
        /* Enough room once the consumed prefix is dropped. */
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        return TERN_OK;
    }
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need) {
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    }
    if (ncap > b->max && need <= b->max) {
        ncap = b->max;
    }
    uint8_t *nd = tern_malloc(ncap);
    if (nd == NULL) {
        return TERN_ENOMEM;
    }
    if (b->len > 0) {
        memcpy(nd, b->data + b->off, b->len);
    }
    tern_free(b->data);
    b->data = nd;
    b->cap = ncap;
    b->off = 0;
    return TERN_OK;
}

uint8_t *tern_buf_tail(struct tern_buf *b, size_t *room)
{
    *room = b->cap - b->off - b->len;
    return b->data ? b->data + b->off + b->len : NULL;
}

void tern_buf_commit(struct tern_buf *b, size_t n)
{
    b->len += n;
}

int tern_buf_append(struct tern_buf *b, const void *src, size_t n)
{
    if (n == 0) {
        return TERN_OK;
    }
    int rc = tern_buf_reserve(b, n);
    if (rc != TERN_OK) {
        return rc;
    }
    memcpy(b->data + b->off + b->len, src, n);
    b->len += n;
    return TERN_OK;
}

void tern_buf_consume(struct tern_buf *b, size_t n)
{
    if (n >= b->len) {
        b->off = 0;
        b->len = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}

void tern_buf_reset(struct tern_buf *b)
{
    b->off = 0;
    b->len = 0;
}

void tern_buf_shrink(struct tern_buf *b, size_t keep)
{
    if (b->len == 0 && b->cap > keep) {
        tern_free(b->data);
        b->data = NULL;
        b->cap = 0;
        b->off = 0;
    }
}
