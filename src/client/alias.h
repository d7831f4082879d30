/* SPDX-License-Identifier: MIT */
/*
 * Outbound topic aliases (MQTT 5 section 3.3.2.3.4) for one connection: a table from alias
 * (1..limit) to the topic the server has been told it stands for, replaced least recently
 * used first. A PUBLISH whose topic is in the table goes out with an empty topic and the
 * alias; a new topic takes a free alias (or the least recently used one) and goes out with
 * the topic and the alias, which tells the server the (new) mapping.
 *
 * Invariants: only aliases 1..limit are ever handed out, limit <= cap; a mapping is recorded
 * (tern__alias_out_commit) only after the packet that establishes it was encoded, so the
 * table never claims a mapping the server was not sent. The table is per connection: reset
 * it with the server's Topic Alias Maximum on every CONNACK. Lookup is a linear scan over at
 * most `limit` entries: the option that sets `cap` documents that cost.
 */
#ifndef TERN_CLIENT_ALIAS_H
#define TERN_CLIENT_ALIAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern__alias_entry {
    char *topic; /* owned copy, NULL when the alias is free */
    size_t len;
    uint64_t used; /* tick of the last use, for LRU */
};

struct tern__alias_out {
    struct tern__alias_entry *e; /* [cap + 1]; index 0 unused */
    uint16_t cap;                /* aliases we may use at most (the client option) */
    uint16_t limit;              /* in force now: min(cap, the server's maximum) */
    uint64_t tick;
};

/* Allocate for `cap` aliases (0: aliasing off, nothing allocated). TERN_OK or TERN_ENOMEM. */
int tern__alias_out_init(struct tern__alias_out *t, uint16_t cap);
void tern__alias_out_fini(struct tern__alias_out *t);

/* Forget every mapping (a new connection) and use at most min(cap, server_max) aliases. */
void tern__alias_out_reset(struct tern__alias_out *t, uint16_t server_max);

/*
 * The alias to send `topic` with: 0 when aliasing is off; else *known is true when the server
 * already maps that alias to this topic (send an empty topic; the use is recorded), false when
 * the topic must be sent with the alias (then call tern__alias_out_commit once it is encoded).
 */
uint16_t tern__alias_out_lookup(struct tern__alias_out *t, const void *topic, size_t len,
                                bool *known);

/* Record that `alias` now stands for `topic` (copied). On allocation failure the alias is left
 * free, which is safe: the next use of the topic sends it in full again. */
void tern__alias_out_commit(struct tern__alias_out *t, uint16_t alias, const void *topic,
                            size_t len);

#endif /* TERN_CLIENT_ALIAS_H */
