/* SPDX-License-Identifier: MIT */
/*
 * Dynamic security: clients, groups and roles changed at runtime with JSON commands, compatible
 * with Mosquitto's dynamic-security plugin (its command set on `$CONTROL/dynamic-security/v1`,
 * its error strings and its `dynamic-security.json` file). Design notes in
 * docs/internals/dynsec.md, user guide in docs/security.md.
 *
 * - A client is a username with an optional password hash, an optional client id binding, text
 *   name and description, a disabled flag, roles and groups (each with a priority).
 * - A group has roles; clients belong to groups. One group may be the anonymous group: its roles
 *   apply to clients without a username.
 * - A role has ordered ACLs of six types, each allow or deny with a priority.
 * - Default access when no ACL matches: publishClientSend deny, publishClientReceive allow,
 *   subscribe deny, unsubscribe allow (changeable with setDefaultACLAccess).
 *
 * Rules kept here: the module never touches the broker; it is a plain data structure guarded by
 * its caller (one writer or many readers at a time: the broker wraps it in a rwlock). A command
 * that fails leaves the state exactly as it was (every allocation is made before the change is
 * committed). Every name is valid UTF-8 of 1..65535 bytes, every ACL topic a valid MQTT filter.
 * Load errors name the file. Nothing is printed.
 */
#ifndef TERN_DYNSEC_DYNSEC_H
#define TERN_DYNSEC_DYNSEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Topic the commands arrive on, and the one answers go to. */
#define TERN_DYNSEC_TOPIC          "$CONTROL/dynamic-security/v1"
#define TERN_DYNSEC_RESPONSE_TOPIC "$CONTROL/dynamic-security/v1/response"
/* Largest command payload and state file accepted (bytes). */
#define TERN_DYNSEC_MAX_REQUEST (1u * 1024u * 1024u)
#define TERN_DYNSEC_MAX_FILE    (64u * 1024u * 1024u)
/* PBKDF2-SHA512 iterations used for new passwords (OWASP 2023), stored in Mosquitto's fields. */
#define TERN_DYNSEC_DEFAULT_ITERATIONS 210000u

/* What a connected client wants to do. */
enum tern_dynsec_access {
    TERN_DYNSEC_PUBLISH_SEND = 0,    /* the client publishes on a topic name */
    TERN_DYNSEC_PUBLISH_RECEIVE = 1, /* a message on a topic name is delivered to the client */
    TERN_DYNSEC_SUBSCRIBE = 2,       /* the client subscribes to a filter */
    TERN_DYNSEC_UNSUBSCRIBE = 3,     /* the client unsubscribes from a filter */
};

/* Answer of an ACL check (same values as the ACL file's enum tern_acl_result). */
enum tern_dynsec_result {
    TERN_DYNSEC_DENY = 0,
    TERN_DYNSEC_ALLOW = 1,
    TERN_DYNSEC_NOMATCH = 2, /* not a dynamic-security client: the next provider decides */
};

/* What a command asks the broker to do to connected clients. */
enum tern_dynsec_effect_kind {
    TERN_DYNSEC_KICK = 1,    /* disconnect every connection using `username` */
    TERN_DYNSEC_RECHECK = 2, /* re-check subscriptions of `username`, or of everyone when NULL */
};

struct tern_dynsec_effect {
    enum tern_dynsec_effect_kind kind;
    char *username; /* owned; NULL for "every client" (RECHECK only) */
};

/* A list of effects (deduplicated). Zero-initialise; free with tern_dynsec_effects_fini. */
struct tern_dynsec_effects {
    struct tern_dynsec_effect *v;
    size_t n, cap;
};

void tern_dynsec_effects_fini(struct tern_dynsec_effects *fx);

struct tern_dynsec;

/* A new empty state with the default ACL access. TERN_OK or TERN_ENOMEM. */
int tern_dynsec_new(struct tern_dynsec **out);
void tern_dynsec_free(struct tern_dynsec *ds);

/* PBKDF2 iterations for passwords set from now on (0 = TERN_DYNSEC_DEFAULT_ITERATIONS). Tests
 * and fuzzers lower it; the broker keeps the default. */
void tern_dynsec_set_iterations(struct tern_dynsec *ds, uint32_t iterations);

/*
 * Load a state from a dynamic-security.json text (Mosquitto's format; Tern writes the same).
 * On success *out is a new state. On failure TERN_ECONFIG with "name: message" in err (name is
 * the path, or what stands for it), TERN_ENOMEM; *out is NULL. `text` is borrowed.
 */
int tern_dynsec_load_string(struct tern_dynsec **out, const char *text, size_t len,
                            const char *name, char *err, size_t errlen);
int tern_dynsec_load_file(struct tern_dynsec **out, const char *path, char *err, size_t errlen);

/* Serialise the whole state. *out is owned by the caller (tern_free), NUL-terminated. */
int tern_dynsec_to_json(const struct tern_dynsec *ds, char **out, size_t *len);

/*
 * Write the state to `path` atomically: `path`.tmp is written, fsynced and renamed over path,
 * then the directory is fsynced. Mode 0600. TERN_OK, TERN_EIO (message naming the file in
 * err), TERN_ENOMEM.
 */
int tern_dynsec_save_file(const struct tern_dynsec *ds, const char *path, char *err, size_t errlen);

/*
 * Run the commands of one request (`req`, `len` bytes, borrowed) as `admin` (the username of
 * the client that sent it, for the log; may be NULL). *resp receives the JSON response (owned,
 * NUL-terminated, free with tern_free). Effects on connected clients are appended to `fx`;
 * *changed is set when the state changed (the caller then saves it). Returns TERN_OK (also when
 * commands failed: their errors are in the response) or TERN_ENOMEM when no response could be
 * built. Password hashing runs here, so callers keep this off the event loop threads.
 */
int tern_dynsec_command(struct tern_dynsec *ds, const char *req, size_t len, char **resp,
                        size_t *resp_len, struct tern_dynsec_effects *fx, bool *changed);

/*
 * Check a CONNECT. TERN_OK: the client exists, is enabled, its client id binding (if any)
 * equals `client_id` and the password matches its hash. TERN_ENOTFOUND: no client has this
 * username (the provider answers "next"). TERN_EDENIED: anything else (disabled, no password
 * set, wrong password or client id). TERN_ENOMEM. Blocks for the hash's cost.
 */
int tern_dynsec_authenticate(const struct tern_dynsec *ds, const char *username,
                             const char *client_id, const void *password, size_t password_len);

/*
 * The part of tern_dynsec_authenticate that needs the state: the same answers, and on TERN_OK
 * *hash is a copy of the client's hash (tern_free it) to check with tern_passwd_check_hash
 * after the caller's lock is released, so a slow hash never holds up writers.
 */
int tern_dynsec_auth_lookup(const struct tern_dynsec *ds, const char *username,
                            const char *client_id, char **hash);

/*
 * May this client do `access` on `topic` (a topic name for PUBLISH_*, a filter for
 * (UN)SUBSCRIBE; `$share/group/` is stripped)? `username` is NULL for an anonymous client;
 * `client_id` is never NULL. ALLOW or DENY from the first matching ACL (Mosquitto's order,
 * see docs/internals/dynsec.md) or from the default access; NOMATCH when `username` is not a
 * dynamic-security client (another provider decides). A disabled client is denied everything.
 */
enum tern_dynsec_result tern_dynsec_check(const struct tern_dynsec *ds, const char *username,
                                          const char *client_id, enum tern_dynsec_access access,
                                          const char *topic, size_t topic_len);

/* True when `username` names a client (enabled or not). */
bool tern_dynsec_has_client(const struct tern_dynsec *ds, const char *username);

/*
 * Build the starting state `tern ctl dynsec init` writes (like `mosquitto_ctrl dynsec init`):
 * a role "admin" allowed to use the `$CONTROL/dynamic-security/#` topics, read `$SYS/#` and
 * subscribe to and read everything, and a client `admin_user` with that role and the password.
 * Writes it to `path` (which must not exist). TERN_OK, TERN_EEXIST, TERN_EINVAL (bad name or
 * empty password), TERN_EIO (message in err), TERN_ENOMEM.
 */
int tern_dynsec_init_file(const char *path, const char *admin_user, const char *admin_password,
                          uint32_t iterations, char *err, size_t errlen);

#endif /* TERN_DYNSEC_DYNSEC_H */
