/* SPDX-License-Identifier: MIT */
/*
 * Topic names, topic filters and matching (MQTT 3.1.1 section 4.7, 5.0 sections 4.7 and 4.8).
 *
 * Validation checks, in this order: the length (1..65535 bytes, else TERN_EBADTOPIC), the UTF-8
 * rules of tern_utf8_validate (else TERN_EBADUTF8), then the wildcard rules (else
 * TERN_EBADTOPIC): a name holds no '+' or '#'; in a filter '+' is a whole level and '#' is the
 * whole last level. Empty levels are legal everywhere. A filter that starts with "$share/" is a
 * shared subscription: a non-empty group without '/', '+' or '#', a '/', then a non-empty
 * filter that is valid by itself. "$share" without the slash is an ordinary filter.
 *
 * Matching walks filter and name once, level by level, without allocating; it assumes both
 * were validated (an invalid input gives some answer but never reads out of bounds). A filter
 * whose first character is a wildcard does not match a name starting with '$' (4.7.2), so
 * "#" never delivers "$SYS/..." while "$SYS/#" does.
 */
#include "protocol/topic.h"

#include "protocol/utf8.h"
#include "tern/error.h"

#include <string.h>

#define TOPIC_MAX_LEN    65535u
#define SHARE_PREFIX     "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

/* Length and UTF-8 checks shared by names and filters. */
static int check_string(const uint8_t *s, size_t len)
{
    if (s == NULL || len == 0 || len > TOPIC_MAX_LEN) {
        return TERN_EBADTOPIC;
    }
    return tern_utf8_validate(s, len);
}

/* Wildcard placement in a plain (non-shared) filter of len >= 1 whose UTF-8 is checked. */
static int check_plain_filter(const uint8_t *f, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = f[i];
        if (c != '+' && c != '#') {
            continue;
        }
        bool level_start = i == 0 || f[i - 1] == '/';
        if (!level_start) {
            return TERN_EBADTOPIC;
        }
        if (c == '#') {
            if (i + 1 != len) {
                return TERN_EBADTOPIC; /* '#' must be the last character */
            }
        } else if (i + 1 != len && f[i + 1] != '/') {
            return TERN_EBADTOPIC; /* '+' must be the whole level */
        }
    }
    return TERN_OK;
}

int tern_topic_name_validate(const uint8_t *name, size_t len)
{
    int rc = check_string(name, len);
    if (rc != TERN_OK) {
        return rc;
    }
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '+' || name[i] == '#') {
            return TERN_EBADTOPIC;
        }
    }
    return TERN_OK;
}

int tern_topic_filter_validate(const uint8_t *filter, size_t len)
{
    int rc = check_string(filter, len);
    if (rc != TERN_OK) {
        return rc;
    }
    const uint8_t *group, *inner;
    size_t group_len, inner_len;
    if (!tern_topic_shared_split(filter, len, &group, &group_len, &inner, &inner_len)) {
        return check_plain_filter(filter, len);
    }
    if (group_len == 0 || inner == NULL || inner_len == 0) {
        return TERN_EBADTOPIC; /* "$share//x", "$share/g", "$share/g/" */
    }
    for (size_t i = 0; i < group_len; i++) {
        if (group[i] == '+' || group[i] == '#') {
            return TERN_EBADTOPIC;
        }
    }
    return check_plain_filter(inner, inner_len);
}

/*
 * `group` and `inner` point into `filter`. For "$share/g" (no second slash) the group is "g"
 * and inner is NULL with length 0; for "$share/g/" inner is empty but not NULL. Out
 * parameters may be NULL; on false they are set to NULL/0.
 */
bool tern_topic_shared_split(const uint8_t *filter, size_t len, const uint8_t **group,
                             size_t *group_len, const uint8_t **inner, size_t *inner_len)
{
    const uint8_t *g = NULL, *in = NULL;
    size_t glen = 0, inlen = 0;
    bool shared = filter != NULL && len >= SHARE_PREFIX_LEN &&
                  memcmp(filter, SHARE_PREFIX, SHARE_PREFIX_LEN) == 0;
    if (shared) {
        g = filter + SHARE_PREFIX_LEN;
        size_t rest = len - SHARE_PREFIX_LEN;
        const uint8_t *slash = rest > 0 ? memchr(g, '/', rest) : NULL;
        if (slash != NULL) {
            glen = (size_t)(slash - g);
            in = slash + 1;
            inlen = rest - glen - 1;
        } else {
            glen = rest;
        }
    }
    if (group != NULL) {
        *group = g;
    }
    if (group_len != NULL) {
        *group_len = glen;
    }
    if (inner != NULL) {
        *inner = in;
    }
    if (inner_len != NULL) {
        *inner_len = inlen;
    }
    return shared;
}

/*
 * One pass over both strings. At the top of the loop `f` and `n` stand at the start of a level
 * in the filter and the name. A '+' level swallows one name level (possibly empty); a '#'
 * level matches whatever is left, including nothing ("a/#" matches "a" via the check at the
 * end of the name).
 */
bool tern_topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen)
{
    if (flen == 0 || nlen == 0) {
        return false;
    }
    if ((filter[0] == '+' || filter[0] == '#') && name[0] == '$') {
        return false;
    }
    size_t f = 0, n = 0;
    for (;;) {
        if (f < flen && filter[f] == '#') {
            return true;
        }
        if (f < flen && filter[f] == '+' && (f + 1 == flen || filter[f + 1] == '/')) {
            while (n < nlen && name[n] != '/') {
                n++;
            }
            f++;
        } else {
            while (f < flen && filter[f] != '/') {
                if (n == nlen || name[n] != filter[f]) {
                    return false;
                }
                f++;
                n++;
            }
            if (n < nlen && name[n] != '/') {
                return false; /* the name's level is longer */
            }
        }
        /* Both at the end of a level: at the end of the string or at a '/'. */
        if (f == flen) {
            return n == nlen;
        }
        if (n == nlen) {
            /* The name ended, the filter goes on: only "/#" may follow (parent match). */
            return f + 2 == flen && filter[f + 1] == '#';
        }
        f++;
        n++;
    }
}

bool tern_topic_has_wildcard(const uint8_t *filter, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (filter[i] == '+' || filter[i] == '#') {
            return true;
        }
    }
    return false;
}

size_t tern_topic_level_count(const uint8_t *topic, size_t len)
{
    size_t levels = 1;
    for (size_t i = 0; i < len; i++) {
        if (topic[i] == '/') {
            levels++;
        }
    }
    return levels;
}
