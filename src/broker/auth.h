/* SPDX-License-Identifier: MIT */
/*
 * Authentication and authorization of clients: the provider chain of DESIGN.md decision 7
 * over the files a listener names (password_file, acl_file), the auth worker pool that runs
 * password hashing off the event loops, and reloading both files on SIGHUP.
 *
 * Login chain (first answer wins): the TLS identity (client certificate with
 * use_identity_as_username / use_subject_as_username, or the PSK identity) allows; the password
 * file allows a matching password, denies a wrong one and passes an unknown user on; the end
 * allows an anonymous client when allow_anonymous is set, allows a named client when no
 * password file applies (Mosquitto's behaviour), and denies everything else.
 *
 * ACL chain: the ACL file's ALLOW / DENY; a topic it says nothing about is denied; without an
 * acl_file everything is allowed.
 *
 * Rules kept here: a password is verified only on a pool thread; a CONNECT that needs the pool is
 * parked (the connection stops reading, c->refs holds it, the packet stays buffered) and is
 * decoded again when the verdict comes back through its worker's mailbox, so a connection that
 * closes meanwhile is freed only then; the pool's queue is bounded (a full queue answers "server
 * busy"). The loaded files form an immutable, reference-counted snapshot: a reload builds a new
 * one and swaps it in; each worker keeps a reference to the snapshot it last used and takes the
 * new one at its next check, so checks on a worker take no lock and no atomic read-modify-write.
 */
#ifndef TERN_BROKER_AUTH_H
#define TERN_BROKER_AUTH_H

#include "broker/acl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tern_broker;
struct tern_conn;
struct tern_qmsg;

/* Pool defaults (auth_threads, auth_queue_size). */
#define TERN_AUTH_THREADS_DEFAULT 2u
#define TERN_AUTH_QUEUE_DEFAULT   256u

/* Verdict of the login chain (stored in the connection while its CONNECT is re-decoded). */
enum tern_auth_verdict {
    TERN_AUTH_NONE = 0,     /* not decided yet */
    TERN_AUTH_ALLOW = 1,    /* log in */
    TERN_AUTH_BAD_CRED = 2, /* wrong password or unknown user: 3.1.1 rc 4, 5.0 0x86 */
    TERN_AUTH_NOT_AUTH = 3, /* not authorized (anonymous refused): 3.1.1 rc 5, 5.0 0x87 */
    TERN_AUTH_BUSY = 4,     /* the pool's queue is full: 3.1.1 rc 3, 5.0 0x89 */
    TERN_AUTH_ERROR = 5,    /* out of memory: 3.1.1 rc 3, 5.0 0x80 */
};

/*
 * Load every listener's password and ACL files and start the pool. Called by tern_broker_start
 * before the workers run; on a bad file logs "file:line: ..." and returns TERN_ECONFIG.
 */
int tern__auth_start(struct tern_broker *b);
/* Stop and join the pool (jobs still queued are dropped), release the snapshots. Called after
 * the workers have stopped and before their loops are freed. Safe after a failed start. */
void tern__auth_stop(struct tern_broker *b);
/* SIGHUP (main thread): load the files again; on success swap them in, else keep the old ones
 * and log the file:line error. */
void tern__auth_reload(struct tern_broker *b);

/*
 * Decide the login of c, whose username (c->username, NULL = anonymous) and client id are set.
 * `tls_ident` is true when the username comes from the TLS identity. Returns the verdict, or
 * TERN_AUTH_NONE after posting the password check to the pool: the caller must then return
 * TERN_EAGAIN (the CONNECT stays buffered; tern__conn_continue decodes it again and later calls
 * return the stored verdict). `password` may be NULL (no password in CONNECT).
 */
enum tern_auth_verdict tern__auth_login(struct tern_conn *c, bool tls_ident,
                                        const uint8_t *password, size_t password_len);

/*
 * ACL check for c (on its worker). TERN_ACL_ALLOW or TERN_ACL_DENY (NOMATCH is turned into
 * DENY when an acl_file applies). Cheap when the listener has no acl_file (always ALLOW).
 */
enum tern_acl_result tern__auth_acl(struct tern_conn *c, const uint8_t *topic, size_t len,
                                    enum tern_acl_access access, uint8_t qos, bool retain);
/* SUBSCRIBE: the highest QoS c may subscribe to `filter` with, or -1 when denied. */
int tern__auth_sub_qos(struct tern_conn *c, const uint8_t *filter, size_t len);

/*
 * Delivery (pump, s->mtx held): may c receive q? Lowers q->qos to what the read rules allow;
 * returns false (and logs, rate limited) when the read rules deny the message.
 */
bool tern__auth_may_deliver(struct tern_conn *c, struct tern_qmsg *q);

/* Log one denial (client id, username, topic, what). */
void tern__auth_log_denied(const struct tern_conn *c, const char *what, const uint8_t *topic,
                           size_t len);

#endif /* TERN_BROKER_AUTH_H */
