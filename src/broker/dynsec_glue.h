/* SPDX-License-Identifier: MIT */
/*
 * Dynamic security inside ternd: the state loaded from `dynamic_security_file`, the provider
 * answers for the auth chain (auth.c), and the `$CONTROL/dynamic-security/v1` command channel.
 *
 * Rules kept here: the state (src/dynsec) sits behind one rwlock; checks take the read lock,
 * commands the write lock. Commands run on one "dynsec" thread of their own (password hashing
 * costs milliseconds and never runs on an event loop); its queue is bounded. After a command
 * that changed the state the file is rewritten atomically before the answer is published, then
 * the effects reach every worker through its mailbox: connections of a deleted, disabled or
 * re-keyed client are closed (reason 0x98, administrative action). Permission changes need no
 * message: every PUBLISH, SUBSCRIBE and delivery asks the state as it is now.
 */
#ifndef TERN_BROKER_DYNSEC_GLUE_H
#define TERN_BROKER_DYNSEC_GLUE_H

#include "dynsec/dynsec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern_worker;

struct tern_broker;
struct tern_conn;

/* Load the configured file and start the command thread (no-op when not configured). Logs and
 * returns TERN_ECONFIG when the file does not load. */
int tern__dynsec_start(struct tern_broker *b);
/* Stop the command thread (queued commands are dropped) and free the state. */
void tern__dynsec_stop(void);
/* True when dynamic security is configured and loaded. */
bool tern__dynsec_enabled(void);

/* Connection migration: begin returns with the kick lock held when worker w has run every
 * kick posted so far (false, unlocked, otherwise); end releases it (dynsec_glue.c). */
bool tern__dynsec_move_begin(const struct tern_worker *w);
void tern__dynsec_move_end(void);

/*
 * Login check (any thread; blocks for the hash). TERN_OK, TERN_EDENIED (wrong password,
 * disabled, client id binding), TERN_ENOTFOUND (not a dynamic-security client, or the feature
 * is off), TERN_ENOMEM.
 */
int tern__dynsec_login(const char *username, const char *client_id, const uint8_t *password,
                       size_t password_len);

/* ACL answer for c (NOMATCH when off or when c's username is not a dynamic-security client). */
enum tern_dynsec_result tern__dynsec_acl(const struct tern_conn *c, enum tern_dynsec_access a,
                                         const uint8_t *topic, size_t len);

/* True when `topic` is the command topic and dynamic security is on. */
bool tern__dynsec_is_control(const uint8_t *topic, size_t len);

/*
 * A PUBLISH from c on the command topic (on c's worker): queued for the command thread when c
 * may publish there (publishClientSend). Returns the PUBACK/PUBREC reason: SUCCESS,
 * NOT_AUTHORIZED, QUOTA_EXCEEDED (queue full) or UNSPECIFIED_ERROR (out of memory).
 */
uint8_t tern__dynsec_control(struct tern_conn *c, const uint8_t *payload, size_t len);

#endif /* TERN_BROKER_DYNSEC_GLUE_H */
