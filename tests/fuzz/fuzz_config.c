/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/broker/config.c. The input is a configuration text, copied into a
 * heap block of exactly its size so ASan sees any read past the end. Inputs naming include_dir
 * are skipped (the fuzzer must not read the machine's files). Invariants (abort on violation):
 *  - the load returns TERN_OK, TERN_ECONFIG or TERN_ENOMEM, never crashes or leaks;
 *  - on error the message is NUL-terminated and starts with "<fuzz>:" (it names file:line);
 *  - on success every listener is resolved: allow_anonymous and allow_zero_length_clientid are
 *    0 or 1, auto_id_prefix is set, max_qos <= 2, a TLS listener has certfile and keyfile,
 *    port 0 only with a Unix socket path, and no two listeners share port and address;
 *  - numeric options stay within their documented ranges.
 */
#include "fuzz.h"
#include "broker/config.h"
#include "common/alloc.h"
#include "tern/error.h"

#include <stdlib.h>
#include <string.h>

static bool same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024 || memmem(data, size, "include_dir", 11) != NULL) {
        return 0;
    }
    char *text = malloc(size ? size : 1);
    if (text == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(text, data, size);
    }
    struct tern_config c;
    tern_config_defaults(&c);
    char err[256];
    int rc = tern_config_load_string(&c, text, size, "<fuzz>", err, sizeof err);
    REQUIRE(rc == TERN_OK || rc == TERN_ECONFIG || rc == TERN_ENOMEM);
    if (rc != TERN_OK) {
        REQUIRE(memchr(err, '\0', sizeof err) != NULL);
        REQUIRE(strncmp(err, "<fuzz>:", 7) == 0);
    } else {
        REQUIRE(c.max_topic_levels >= 1 && c.max_topic_levels <= TERN_CONFIG_MAX_TOPIC_LEVELS);
        REQUIRE(c.threads <= 1024);
        REQUIRE(c.max_qos <= 2);
        REQUIRE(c.max_packet_size == 0 || c.max_packet_size >= 20);
        REQUIRE(c.persistent_client_expiration >= 0);
        for (size_t i = 0; i < c.nlisteners; i++) {
            const struct tern_listener_config *l = &c.listeners[i];
            REQUIRE(l->auth.allow_anonymous == 0 || l->auth.allow_anonymous == 1);
            REQUIRE(l->auth.allow_zero_length_clientid == 0 ||
                    l->auth.allow_zero_length_clientid == 1);
            REQUIRE(l->auth.auto_id_prefix != NULL);
            REQUIRE(l->max_qos <= 2);
            REQUIRE(l->max_connections >= -1);
            REQUIRE(l->origin != NULL);
            REQUIRE(l->tls.enabled == (l->tls.certfile != NULL));
            REQUIRE((l->tls.certfile == NULL) == (l->tls.keyfile == NULL));
            REQUIRE(l->port != 0 || l->unix_path != NULL);
            for (size_t j = 0; j < i; j++) {
                const struct tern_listener_config *o = &c.listeners[j];
                REQUIRE(!(l->unix_path == NULL && o->unix_path == NULL && l->port == o->port &&
                          same(l->bind_address, o->bind_address)));
            }
        }
    }
    tern_config_free(&c);
    free(text);
    return 0;
}
