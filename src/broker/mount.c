/* SPDX-License-Identifier: MIT */
/*
 * mount_point prefixing (see mount.h). The prefix is copied in front of the topic in a
 * thread-local buffer as large as the largest MQTT string, so no call allocates.
 */
#include "broker/mount.h"

#include "broker/broker.h"
#include "broker/conn.h"
#include "protocol/topic.h"
#include "tern/error.h"

#include <string.h>

#define MQTT_STRING_MAX 65535u

static _Thread_local uint8_t tl_buf[MQTT_STRING_MAX];

const char *tern__mount_point(const struct tern_conn *c, size_t *len)
{
    const struct tern_listener_config *l = c->listener ? c->listener->cfg : NULL;
    const char *mp = l ? l->mount_point : NULL;
    *len = mp ? l->mount_point_len : 0;
    return mp;
}

bool tern__mount_in(const struct tern_conn *c, const uint8_t **ptr, size_t *len, bool filter)
{
    size_t mpl;
    const char *mp = tern__mount_point(c, &mpl);
    /* Something invalid stays as it is, so it is refused as sent: "" or "$share/g" must not
     * become a valid "mp/" or "mp/$share/g". */
    if (mp == NULL || (filter ? tern_topic_filter_validate(*ptr, *len)
                              : tern_topic_name_validate(*ptr, *len)) != TERN_OK) {
        return true;
    }
    /* A shared subscription keeps `$share/GROUP/` in front: the prefix goes on its filter. */
    size_t head = 0;
    const uint8_t *group, *inner;
    size_t group_len, inner_len;
    if (filter && tern_topic_shared_split(*ptr, *len, &group, &group_len, &inner, &inner_len)) {
        head = (size_t)(inner - *ptr);
    }
    if (mpl + *len > MQTT_STRING_MAX) {
        return false;
    }
    memcpy(tl_buf, *ptr, head);
    memcpy(tl_buf + head, mp, mpl);
    memcpy(tl_buf + head + mpl, *ptr + head, *len - head);
    *ptr = tl_buf;
    *len += mpl;
    return true;
}

void tern__mount_out(const struct tern_conn *c, const uint8_t **ptr, size_t *len)
{
    size_t mpl;
    const char *mp = tern__mount_point(c, &mpl);
    if (mp != NULL && *len >= mpl && memcmp(*ptr, mp, mpl) == 0) {
        *ptr += mpl;
        *len -= mpl;
    }
}
