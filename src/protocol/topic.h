/* SPDX-License-Identifier: MIT */
/*
 * Topic names, topic filters and matching (MQTT 3.1.1 section 4.7, 5.0 section 4.7/4.8).
 *
 * Rules kept here and nowhere else: names and filters are non-empty UTF-8 strings of at most
 * 65535 bytes (tern_utf8_validate rules); a name holds no '+' or '#'; in a filter '+' fills a
 * whole level and '#' is the whole last level; empty levels are allowed ("a//b", "/a");
 * a filter whose first character is a wildcard never matches a topic starting with '$'.
 * "$share/{group}/{filter}" names a shared subscription: the group is non-empty without '/',
 * '+' or '#', and the filter after it is itself valid.
 */
#ifndef TERN_PROTOCOL_TOPIC_H
#define TERN_PROTOCOL_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TERN_OK, TERN_EBADUTF8 or TERN_EBADTOPIC. */
int tern_topic_name_validate(const uint8_t *name, size_t len);
/* TERN_OK, TERN_EBADUTF8 or TERN_EBADTOPIC; "$share/..." filters are checked as shared. */
int tern_topic_filter_validate(const uint8_t *filter, size_t len);

/*
 * Split "$share/group/filter". Returns true for a shared subscription and sets the group and
 * inner filter views (into `filter`); false when it is not one. Does not validate.
 */
bool tern_topic_shared_split(const uint8_t *filter, size_t len, const uint8_t **group,
                             size_t *group_len, const uint8_t **inner, size_t *inner_len);

/* True when the valid, non-shared filter matches the valid topic name (with the '$' rule). */
bool tern_topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen);

/* True when the filter contains '+' or '#'. */
bool tern_topic_has_wildcard(const uint8_t *filter, size_t len);

/* Number of levels ('/' count + 1) of a name or filter: "a" 1, "/" 2, "a//b" 3. */
size_t tern_topic_level_count(const uint8_t *topic, size_t len);

#endif /* TERN_PROTOCOL_TOPIC_H */
