/* SPDX-License-Identifier: MIT */
/*
 * mount_point (a listener option, as in Mosquitto): every topic a client of that listener uses
 * is prefixed with the mount point on the way in (PUBLISH topic, will topic, SUBSCRIBE and
 * UNSUBSCRIBE filters, inside `$share/GROUP/` for shared ones), and the prefix is taken off on
 * the way out, so the clients of one listener see only their own subtree and never the prefix.
 * Everything inside the broker (routing, retained messages, ACLs, the store) uses the full,
 * prefixed topic.
 *
 * Rules kept here: a mounted topic or filter lives in a thread-local buffer valid until the
 * next call on the same thread (handlers use it at once: anything kept is copied by its
 * owner); a result longer than an MQTT string (65535 bytes) is refused, never truncated.
 */
#ifndef TERN_BROKER_MOUNT_H
#define TERN_BROKER_MOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern_conn;

/* The mount point of c's listener, or NULL (then *len is 0). */
const char *tern__mount_point(const struct tern_conn *c, size_t *len);

/*
 * Prefix a topic name (filter = false) or filter (filter = true) from c in place: ptr and len
 * are replaced by the mounted form when c's listener has a mount point and the input is valid
 * (an invalid one is left alone, to be refused as the client sent it). Returns false when the
 * result would be longer than 65535 bytes.
 */
bool tern__mount_in(const struct tern_conn *c, const uint8_t **ptr, size_t *len, bool filter);

/* Take the mount point off an outgoing topic (left as it is when it does not start with it). */
void tern__mount_out(const struct tern_conn *c, const uint8_t **ptr, size_t *len);

#endif /* TERN_BROKER_MOUNT_H */
