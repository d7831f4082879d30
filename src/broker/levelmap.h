/* SPDX-License-Identifier: MIT */
/*
 * Level map: a small open-addressing hash table from a byte string (one topic level, or any
 * short key) to a pointer, used by the subscription and retained-message trees for a node's
 * children. Internal to src/broker (tern__ prefix).
 *
 * The map does not copy keys: an entry's key must stay valid and unchanged while the entry is
 * in the map (the trees point it at the child node's own key bytes). Linear probing with
 * backward-shift deletion, so there are no tombstones; the table stays at most 3/4 full and is
 * released when it becomes empty. Values are never NULL (NULL means "absent"). Not
 * thread-safe: the trees hold their lock.
 */
#ifndef TERN_BROKER_LEVELMAP_H
#define TERN_BROKER_LEVELMAP_H

#include <stddef.h>
#include <stdint.h>

struct tern__levelmap_slot {
    const uint8_t *key; /* borrowed */
    size_t len;
    uint32_t hash;
    void *value; /* NULL = empty slot */
};

struct tern__levelmap {
    struct tern__levelmap_slot *slots; /* NULL while empty */
    size_t cap;                        /* 0 or a power of two */
    size_t count;
};

/* Hash of a key (FNV-1a, 32 bits). */
uint32_t tern__levelmap_hash(const uint8_t *key, size_t len);
/* The value stored under key, or NULL. */
void *tern__levelmap_get(const struct tern__levelmap *m, const uint8_t *key, size_t len);
/* Insert key (borrowed) -> value (non-NULL); the key must be absent. TERN_OK or TERN_ENOMEM. */
int tern__levelmap_put(struct tern__levelmap *m, const uint8_t *key, size_t len, void *value);
/* Remove key; returns its value or NULL when absent. */
void *tern__levelmap_del(struct tern__levelmap *m, const uint8_t *key, size_t len);
/* Free the table (not the values). */
void tern__levelmap_fini(struct tern__levelmap *m);

#endif /* TERN_BROKER_LEVELMAP_H */
