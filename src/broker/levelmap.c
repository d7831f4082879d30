/* SPDX-License-Identifier: MIT */
/*
 * Level map (see levelmap.h): open addressing, linear probing, backward-shift deletion.
 * Invariants: cap is 0 or a power of two >= 4; count <= cap * 3 / 4; every occupied slot is
 * reachable from its home slot without crossing an empty one.
 */
#include "broker/levelmap.h"

#include "common/alloc.h"
#include "tern/error.h"

#include <stdbool.h>
#include <string.h>

#define MIN_CAP 4u

uint32_t tern__levelmap_hash(const uint8_t *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= key[i];
        h *= 16777619u;
    }
    return h;
}

static size_t find_slot(const struct tern__levelmap *m, const uint8_t *key, size_t len,
                        uint32_t hash)
{
    size_t mask = m->cap - 1;
    size_t i = hash & mask;
    for (;;) {
        const struct tern__levelmap_slot *s = &m->slots[i];
        if (s->value == NULL) {
            return i;
        }
        if (s->hash == hash && s->len == len && (len == 0 || memcmp(s->key, key, len) == 0)) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

void *tern__levelmap_get(const struct tern__levelmap *m, const uint8_t *key, size_t len)
{
    if (m->count == 0) {
        return NULL;
    }
    size_t i = find_slot(m, key, len, tern__levelmap_hash(key, len));
    return m->slots[i].value;
}

static int grow(struct tern__levelmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : MIN_CAP;
    struct tern__levelmap_slot *ns = tern_calloc(ncap, sizeof *ns);
    if (ns == NULL) {
        return TERN_ENOMEM;
    }
    struct tern__levelmap old = *m;
    m->slots = ns;
    m->cap = ncap;
    for (size_t i = 0; i < old.cap; i++) {
        struct tern__levelmap_slot *s = &old.slots[i];
        if (s->value != NULL) {
            m->slots[find_slot(m, s->key, s->len, s->hash)] = *s;
        }
    }
    tern_free(old.slots);
    return TERN_OK;
}

int tern__levelmap_put(struct tern__levelmap *m, const uint8_t *key, size_t len, void *value)
{
    if ((m->count + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc != TERN_OK) {
            return rc;
        }
    }
    uint32_t hash = tern__levelmap_hash(key, len);
    struct tern__levelmap_slot *s = &m->slots[find_slot(m, key, len, hash)];
    s->key = key;
    s->len = len;
    s->hash = hash;
    s->value = value;
    m->count++;
    return TERN_OK;
}

void *tern__levelmap_del(struct tern__levelmap *m, const uint8_t *key, size_t len)
{
    if (m->count == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1;
    size_t i = find_slot(m, key, len, tern__levelmap_hash(key, len));
    void *value = m->slots[i].value;
    if (value == NULL) {
        return NULL;
    }
    /* Backward shift: pull later entries of the cluster into the hole when their home slot
     * does not lie cyclically in (hole, j]. */
    size_t hole = i;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        struct tern__levelmap_slot *s = &m->slots[j];
        if (s->value == NULL) {
            break;
        }
        size_t home = s->hash & mask;
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->slots[hole] = *s;
            hole = j;
        }
    }
    memset(&m->slots[hole], 0, sizeof m->slots[hole]);
    if (--m->count == 0) {
        tern__levelmap_fini(m);
    }
    return value;
}

void tern__levelmap_fini(struct tern__levelmap *m)
{
    tern_free(m->slots);
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}
