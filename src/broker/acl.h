/* SPDX-License-Identifier: MIT */
/*
 * ACL file in Mosquitto's format, with Tern's per-rule QoS and retain limits.
 *
 *   # comment
 *   topic [read|write|readwrite|deny] TOPIC [qos<=N] [retain=yes|no]   (anonymous clients)
 *   user NAME                                                           (opens NAME's section)
 *   topic [read|write|readwrite|deny] TOPIC [qos<=N] [retain=yes|no]   (for NAME)
 *   pattern [read|write|readwrite|deny] TOPIC [qos<=N] [retain=yes|no] (every client, anywhere)
 *
 * `topic` lines before the first `user` line apply to clients without a username; `pattern`
 * lines apply to every client wherever they appear, with `%c` replaced by the client id and
 * `%u` by the username. The access word defaults to readwrite. TOPIC is the rest of the line
 * (spaces allowed, as in Mosquitto) once trailing option tokens are taken off.
 *
 * Rules kept here: every load error names `file:line`; after load the structure is immutable
 * (thread-safe checks, reload = load a new one and swap). A deny rule that matches overrides any
 * allow. A substitution is compared literally, one level at a time: a value holding '/' can
 * never match a level, and a client whose id (or username) holds '+' or '#' is denied outright
 * when a pattern using `%c` (`%u`) is evaluated, as Mosquitto does, so an id cannot widen a rule.
 */
#ifndef TERN_BROKER_ACL_H
#define TERN_BROKER_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN_ACL_MAX_FILE (64u * 1024u * 1024u)
#define TERN_ACL_MAX_LINE 65536u

/* What the client wants to do. */
enum tern_acl_access {
    TERN_ACL_READ = 1,      /* receive a PUBLISH on this topic name (checked at delivery) */
    TERN_ACL_WRITE = 2,     /* send a PUBLISH on this topic name */
    TERN_ACL_SUBSCRIBE = 4, /* SUBSCRIBE to this filter (wildcards allowed, $share/ stripped) */
};

enum tern_acl_result {
    TERN_ACL_DENY = 0,    /* a deny rule matched, or rules matched but none grants this */
    TERN_ACL_ALLOW = 1,   /* an allow rule grants it and no deny rule matches */
    TERN_ACL_NOMATCH = 2, /* no rule of this file matches: the provider answers "next" */
};

struct tern_acl;

/*
 * One remembered answer, kept by a caller that checks the same subject repeatedly (the broker:
 * per connection). Valid while `gen` (the caller's generation of the rules, 0 = empty) matches;
 * topics longer than `topic` are not remembered.
 */
struct tern_acl_cache {
    uint64_t gen;
    uint8_t topic[48];
    uint8_t len, qos_in, qos_out;
    bool retain, allow;
};

/*
 * Load an ACL file. On success *out is a new ACL (free with tern_acl_free). Errors:
 * TERN_ECONFIG with "path:line: message" in err, TERN_ENOMEM; *out is then NULL.
 */
int tern_acl_load_file(struct tern_acl **out, const char *path, char *err, size_t errlen);

/* Same from memory; `name` stands for the path in messages. `text` is borrowed. */
int tern_acl_load_string(struct tern_acl **out, const char *text, size_t len, const char *name,
                         char *err, size_t errlen);

void tern_acl_free(struct tern_acl *acl);

/* Number of rules loaded (all sections). */
size_t tern_acl_rule_count(const struct tern_acl *acl);

/*
 * May this client do `access` on `topic` (topic_len bytes, a valid topic name for READ/WRITE, a
 * valid filter for SUBSCRIBE) at `qos`, with `retain` (WRITE: the PUBLISH has the retain flag;
 * READ: the message comes from the retained store; SUBSCRIBE: ignored)? `username` is NULL
 * for an anonymous client; `client_id` is never NULL (may be ""). All borrowed.
 *
 * SUBSCRIBE follows Mosquitto: the filter is allowed when a read rule's filter covers it (its
 * wildcards are read as literal levels; a rule `+` never covers a filter `#`), and denied when a
 * deny rule covers it. Messages reaching a wildcard subscription must still be checked for READ
 * at delivery: that is where rules for a part of the filter take effect.
 */
enum tern_acl_result tern_acl_check(const struct tern_acl *acl, const char *username,
                                    const char *client_id, const char *topic, size_t topic_len,
                                    enum tern_acl_access access, uint8_t qos, bool retain);

/*
 * The highest QoS (0-2) the allow rules grant for this access (ignoring their QoS limits only to
 * find the best one), or -1 when the answer for QoS 0 is not ALLOW. Lets SUBSCRIBE grant a lower
 * QoS than asked instead of failing.
 */
int tern_acl_max_qos(const struct tern_acl *acl, const char *username, const char *client_id,
                     const char *topic, size_t topic_len, enum tern_acl_access access, bool retain);

#endif /* TERN_BROKER_ACL_H */
