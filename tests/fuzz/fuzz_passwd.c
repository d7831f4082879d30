/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for src/auth/passwd.c. The input is a password file, copied into a
 * heap block of exactly its size so ASan sees any read past the end. Invariants (abort on
 * violation):
 *  - the load returns TERN_OK, TERN_ECONFIG or TERN_ENOMEM, never crashes or leaks;
 *  - on error the message is NUL-terminated and starts with "<fuzz>:" (it names file:line) and
 *    no table is returned;
 *  - on success the first user line's name is found, a name never in a valid file (":") is
 *    not, and the count is at least 1 exactly when such a line exists;
 *  - a lone `$6$` hash (cheap to check) gives TERN_OK, TERN_EDENIED or TERN_EINVAL, and
 *    TERN_EINVAL exactly when a file holding it as "u:<hash>" does not load.
 * Verification of `$7$`/argon2id lines is not run here: their cost is in the input.
 */
#include "fuzz.h"
#include "auth/passwd.h"
#include "common/alloc.h"
#include "tern/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First "user:" line's user name as the loader reads it, or false. */
static bool first_user(const char *t, size_t n, char *out, size_t cap)
{
    size_t pos = 0;
    while (pos < n) {
        const char *l = t + pos;
        const char *nl = memchr(l, '\n', n - pos);
        size_t ll = nl ? (size_t)(nl - l) : n - pos;
        pos += ll + (nl != NULL);
        while (ll > 0 && (l[0] == ' ' || l[0] == '\t' || l[0] == '\r')) {
            l++;
            ll--;
        }
        while (ll > 0 && (l[ll - 1] == ' ' || l[ll - 1] == '\t' || l[ll - 1] == '\r')) {
            ll--;
        }
        if (ll == 0 || l[0] == '#') {
            continue;
        }
        const char *c = memchr(l, ':', ll);
        if (c == NULL) {
            return false;
        }
        size_t ul = (size_t)(c - l);
        while (ul > 0 && (l[ul - 1] == ' ' || l[ul - 1] == '\t' || l[ul - 1] == '\r')) {
            ul--;
        }
        if (ul + 1 > cap) {
            return false;
        }
        memcpy(out, l, ul);
        out[ul] = '\0';
        return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024) {
        return 0;
    }
    char *text = malloc(size ? size : 1);
    if (text == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(text, data, size);
    }
    struct tern_passwd *pw = NULL;
    char err[256];
    int rc = tern_passwd_load_string(&pw, text, size, "<fuzz>", err, sizeof err);
    REQUIRE(rc == TERN_OK || rc == TERN_ECONFIG || rc == TERN_ENOMEM);
    if (rc != TERN_OK) {
        REQUIRE(pw == NULL);
        if (rc == TERN_ECONFIG) {
            REQUIRE(memchr(err, '\0', sizeof err) != NULL);
            REQUIRE(strncmp(err, "<fuzz>:", 7) == 0);
        }
    } else {
        char user[TERN_PASSWD_MAX_LINE + 1];
        bool has = first_user(text, size, user, sizeof user);
        REQUIRE(has == (tern_passwd_count(pw) > 0));
        if (has) {
            REQUIRE(tern_passwd_has_user(pw, user));
        }
        REQUIRE(!tern_passwd_has_user(pw, ":"));
    }
    tern_passwd_free(pw);

    if (size >= 3 && size < 512 && memcmp(text, "$6$", 3) == 0 &&
        memchr(text, '\n', size) == NULL && memchr(text, '\r', size) == NULL &&
        memchr(text, '\0', size) == NULL && memchr(text, ' ', size) == NULL &&
        memchr(text, '\t', size) == NULL) {
        int crc = tern_passwd_check_hash(text, size, "pw", 2);
        REQUIRE(crc == TERN_OK || crc == TERN_EDENIED || crc == TERN_EINVAL || crc == TERN_ENOMEM);
        char line[520];
        int n = snprintf(line, sizeof line, "u:%.*s", (int)size, text);
        struct tern_passwd *one = NULL;
        int lrc = tern_passwd_load_string(&one, line, (size_t)n, "<fuzz>", NULL, 0);
        if (lrc != TERN_ENOMEM && crc != TERN_ENOMEM) {
            REQUIRE((crc == TERN_EINVAL) == (lrc != TERN_OK));
        }
        if (one != NULL) {
            int vrc = tern_passwd_verify(one, "u", "pw", 2);
            REQUIRE(vrc == crc || vrc == TERN_ENOMEM || crc == TERN_ENOMEM);
        }
        tern_passwd_free(one);
    }
    free(text);
    return 0;
}
