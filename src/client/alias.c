/* SPDX-License-Identifier: MIT */
/*
 * Outbound topic alias table with least-recently-used replacement (see alias.h).
 */
#include "client/alias.h"

#include "common/alloc.h"
#include "tern/error.h"

#include <string.h>

int tern__alias_out_init(struct tern__alias_out *t, uint16_t cap)
{
    memset(t, 0, sizeof(*t));
    if (cap == 0) {
        return TERN_OK;
    }
    t->e = tern_calloc((size_t)cap + 1, sizeof(*t->e));
    if (t->e == NULL) {
        return TERN_ENOMEM;
    }
    t->cap = cap;
    return TERN_OK;
}

void tern__alias_out_reset(struct tern__alias_out *t, uint16_t server_max)
{
    for (size_t i = 1; t->e != NULL && i <= t->cap; i++) {
        tern_free(t->e[i].topic);
        t->e[i].topic = NULL;
        t->e[i].len = 0;
        t->e[i].used = 0;
    }
    t->limit = server_max < t->cap ? server_max : t->cap;
    t->tick = 0;
}

void tern__alias_out_fini(struct tern__alias_out *t)
{
    tern__alias_out_reset(t, 0);
    tern_free(t->e);
    memset(t, 0, sizeof(*t));
}

uint16_t tern__alias_out_lookup(struct tern__alias_out *t, const void *topic, size_t len,
                                bool *known)
{
    *known = false;
    if (t->limit == 0) {
        return 0;
    }
    uint16_t victim = 1;
    for (uint16_t a = 1; a <= t->limit; a++) {
        struct tern__alias_entry *e = &t->e[a];
        if (e->topic != NULL && e->len == len && memcmp(e->topic, topic, len) == 0) {
            e->used = ++t->tick;
            *known = true;
            return a;
        }
        /* A free alias beats any used one; among used ones the oldest goes. */
        struct tern__alias_entry *v = &t->e[victim];
        if (v->topic != NULL && (e->topic == NULL || e->used < v->used)) {
            victim = a;
        }
    }
    return victim;
}

void tern__alias_out_commit(struct tern__alias_out *t, uint16_t alias, const void *topic,
                            size_t len)
{
    if (alias == 0 || alias > t->limit) {
        return;
    }
    struct tern__alias_entry *e = &t->e[alias];
    tern_free(e->topic);
    e->topic = tern_malloc(len + 1);
    e->len = 0;
    if (e->topic != NULL) {
        memcpy(e->topic, topic, len);
        e->topic[len] = '\0';
        e->len = len;
        e->used = ++t->tick;
    }
}
