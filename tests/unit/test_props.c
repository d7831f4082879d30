/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for MQTT 5 properties (src/protocol/props.c): the type of every identifier, the
 * packets each may appear in (checked against the spec's table written out again here), the
 * repetition and value rules, the iterator on good and truncated blocks, and the builder
 * (sizes, overflow without writing past the buffer, invalid values, copy-through).
 */
#include "test.h"

#include "protocol/mqtt.h"
#include "protocol/props.h"

#include <stdint.h>

/* 5.0 table 2-4, independent of the implementation's table. */
static const struct {
    uint8_t id;
    uint8_t type;
    const char *name;
} ids[] = {
    {0x01, TERN_PTYPE_BYTE, "Payload Format Indicator"},
    {0x02, TERN_PTYPE_U32, "Message Expiry Interval"},
    {0x03, TERN_PTYPE_UTF8, "Content Type"},
    {0x08, TERN_PTYPE_UTF8, "Response Topic"},
    {0x09, TERN_PTYPE_BINARY, "Correlation Data"},
    {0x0B, TERN_PTYPE_VARINT, "Subscription Identifier"},
    {0x11, TERN_PTYPE_U32, "Session Expiry Interval"},
    {0x12, TERN_PTYPE_UTF8, "Assigned Client Identifier"},
    {0x13, TERN_PTYPE_U16, "Server Keep Alive"},
    {0x15, TERN_PTYPE_UTF8, "Authentication Method"},
    {0x16, TERN_PTYPE_BINARY, "Authentication Data"},
    {0x17, TERN_PTYPE_BYTE, "Request Problem Information"},
    {0x18, TERN_PTYPE_U32, "Will Delay Interval"},
    {0x19, TERN_PTYPE_BYTE, "Request Response Information"},
    {0x1A, TERN_PTYPE_UTF8, "Response Information"},
    {0x1C, TERN_PTYPE_UTF8, "Server Reference"},
    {0x1F, TERN_PTYPE_UTF8, "Reason String"},
    {0x21, TERN_PTYPE_U16, "Receive Maximum"},
    {0x22, TERN_PTYPE_U16, "Topic Alias Maximum"},
    {0x23, TERN_PTYPE_U16, "Topic Alias"},
    {0x24, TERN_PTYPE_BYTE, "Maximum QoS"},
    {0x25, TERN_PTYPE_BYTE, "Retain Available"},
    {0x26, TERN_PTYPE_PAIR, "User Property"},
    {0x27, TERN_PTYPE_U32, "Maximum Packet Size"},
    {0x28, TERN_PTYPE_BYTE, "Wildcard Subscription Available"},
    {0x29, TERN_PTYPE_BYTE, "Subscription Identifier Available"},
    {0x2A, TERN_PTYPE_BYTE, "Shared Subscription Available"},
};
#define NIDS (sizeof(ids) / sizeof(ids[0]))

static void test_types_and_names(void)
{
    int known = 0;
    for (unsigned id = 0; id < 256; id++) {
        uint8_t t = tern_prop_type_of((uint8_t)id);
        uint8_t want = 0;
        const char *name = "?";
        for (size_t i = 0; i < NIDS; i++) {
            if (ids[i].id == id) {
                want = ids[i].type;
                name = ids[i].name;
            }
        }
        CHECK_EQ(t, want);
        if (strcmp(tern_prop_name((uint8_t)id), name) != 0) {
            fprintf(stderr, "  id 0x%02x: name '%s', want '%s'\n", id, tern_prop_name((uint8_t)id),
                    name);
            tern_test_failed_checks++;
        }
        known += t != 0;
    }
    CHECK_EQ(known, 27);
}

/*
 * Where each property may appear: "W" is the will, the rest are packet type numbers.
 * Spelled out as strings of packet names to stay readable and independent.
 */
static const struct {
    uint8_t id;
    const char *where;
} allowed[] = {
    {0x01, "PUBLISH WILL"},
    {0x02, "PUBLISH WILL"},
    {0x03, "PUBLISH WILL"},
    {0x08, "PUBLISH WILL"},
    {0x09, "PUBLISH WILL"},
    {0x0B, "PUBLISH SUBSCRIBE"},
    {0x11, "CONNECT CONNACK DISCONNECT"},
    {0x12, "CONNACK"},
    {0x13, "CONNACK"},
    {0x15, "CONNECT CONNACK AUTH"},
    {0x16, "CONNECT CONNACK AUTH"},
    {0x17, "CONNECT"},
    {0x18, "WILL"},
    {0x19, "CONNECT"},
    {0x1A, "CONNACK"},
    {0x1C, "CONNACK DISCONNECT"},
    {0x1F, "CONNACK PUBACK PUBREC PUBREL PUBCOMP SUBACK UNSUBACK DISCONNECT AUTH"},
    {0x21, "CONNECT CONNACK"},
    {0x22, "CONNECT CONNACK"},
    {0x23, "PUBLISH"},
    {0x24, "CONNACK"},
    {0x25, "CONNACK"},
    {0x26, "CONNECT CONNACK PUBLISH WILL PUBACK PUBREC PUBREL PUBCOMP SUBSCRIBE SUBACK "
           "UNSUBSCRIBE UNSUBACK DISCONNECT AUTH"},
    {0x27, "CONNECT CONNACK"},
    {0x28, "CONNACK"},
    {0x29, "CONNACK"},
    {0x2A, "CONNACK"},
};

static const char *const pnames[] = {"WILL",      "CONNECT",  "CONNACK",     "PUBLISH",
                                     "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                     "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                     "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};

static bool word_in(const char *list, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = list; (p = strstr(p, w)) != NULL; p += n) {
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

/* One valid property of this id into b (values chosen to pass the range rules). */
static void add_sample(struct tern_props_builder *b, uint8_t id)
{
    switch (tern_prop_type_of(id)) {
    case TERN_PTYPE_BYTE:
        tern_props_add_byte(b, id, 1);
        break;
    case TERN_PTYPE_U16:
        tern_props_add_u16(b, id, 10);
        break;
    case TERN_PTYPE_U32:
        tern_props_add_u32(b, id, 1000);
        break;
    case TERN_PTYPE_VARINT:
        tern_props_add_varint(b, id, 200);
        break;
    case TERN_PTYPE_UTF8:
        tern_props_add_str(b, id, "a/b", 3);
        break;
    case TERN_PTYPE_BINARY:
        tern_props_add_str(b, id, "\0\xff", 2);
        break;
    default:
        tern_props_add_pair(b, id, "k", 1, "v", 1);
        break;
    }
}

static void test_allowed_matrix(void)
{
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        uint8_t id = allowed[i].id;
        uint8_t buf[64];
        struct tern_props_builder b;
        tern_props_builder_init(&b, buf, sizeof(buf));
        add_sample(&b, id);
        /* Authentication Data needs a Method next to it. */
        if (id == TERN_PROP_AUTHENTICATION_DATA) {
            tern_props_add_str(&b, TERN_PROP_AUTHENTICATION_METHOD, "m", 1);
        }
        CHECK(!b.overflow && !b.invalid);
        struct tern_props p = tern_props_builder_result(&b);
        for (unsigned t = 0; t < 16; t++) {
            bool will = t == 0;
            uint8_t ptype = will ? TERN_CONNECT : (uint8_t)t;
            bool want = word_in(allowed[i].where, pnames[t]);
            uint8_t reason = 0xEE;
            int rc = tern_props_validate(p, ptype, will, &reason);
            if ((rc == TERN_OK) != want) {
                fprintf(stderr, "  %s in %s: got %s, want %s\n", tern_prop_name(id), pnames[t],
                        tern_errname(rc), want ? "allowed" : "refused");
                tern_test_failed_checks++;
            }
            if (rc != TERN_OK) {
                CHECK_ERR(rc, TERN_EPROTOCOL);
                CHECK_EQ(reason, TERN_RC_PROTOCOL_ERROR);
            } else {
                CHECK_EQ(reason, TERN_RC_SUCCESS);
            }
        }
    }
    /* Packet types without properties, and numbers that are no packet type. */
    struct tern_props empty = {NULL, 0};
    CHECK_ERR(tern_props_validate(empty, TERN_PUBLISH, false, NULL), TERN_OK);
    CHECK_ERR(tern_props_validate(empty, 0, false, NULL), TERN_EPROTOCOL);
    CHECK_ERR(tern_props_validate(empty, 16, false, NULL), TERN_EPROTOCOL);
    CHECK_ERR(tern_props_validate(empty, TERN_PINGREQ, false, NULL), TERN_EPROTOCOL);
}

static void test_repetition(void)
{
    for (size_t i = 0; i < NIDS; i++) {
        uint8_t id = ids[i].id;
        uint8_t buf[64];
        struct tern_props_builder b;
        tern_props_builder_init(&b, buf, sizeof(buf));
        add_sample(&b, id);
        add_sample(&b, id);
        if (id == TERN_PROP_AUTHENTICATION_DATA) {
            tern_props_add_str(&b, TERN_PROP_AUTHENTICATION_METHOD, "m", 1);
        }
        struct tern_props p = tern_props_builder_result(&b);
        /* Validate in every context the property is allowed in. */
        for (size_t j = 0; j < sizeof(allowed) / sizeof(allowed[0]); j++) {
            if (allowed[j].id != id) {
                continue;
            }
            for (unsigned t = 0; t < 16; t++) {
                if (!word_in(allowed[j].where, pnames[t])) {
                    continue;
                }
                bool will = t == 0;
                uint8_t ptype = will ? TERN_CONNECT : (uint8_t)t;
                bool repeatable = id == TERN_PROP_USER_PROPERTY ||
                                  (id == TERN_PROP_SUBSCRIPTION_IDENTIFIER && t == TERN_PUBLISH);
                uint8_t reason = 0;
                int rc = tern_props_validate(p, ptype, will, &reason);
                if ((rc == TERN_OK) != repeatable) {
                    fprintf(stderr, "  %s twice in %s: got %s\n", tern_prop_name(id), pnames[t],
                            tern_errname(rc));
                    tern_test_failed_checks++;
                }
                if (!repeatable) {
                    CHECK_EQ(reason, TERN_RC_PROTOCOL_ERROR);
                }
            }
        }
    }
    /* User properties keep their order through the iterator. */
    uint8_t buf[64];
    struct tern_props_builder b;
    tern_props_builder_init(&b, buf, sizeof(buf));
    tern_props_add_pair(&b, TERN_PROP_USER_PROPERTY, "a", 1, "1", 1);
    tern_props_add_pair(&b, TERN_PROP_USER_PROPERTY, "a", 1, "2", 1);
    tern_props_add_pair(&b, TERN_PROP_USER_PROPERTY, "b", 1, "3", 1);
    struct tern_props p = tern_props_builder_result(&b);
    CHECK_ERR(tern_props_validate(p, TERN_PUBLISH, false, NULL), TERN_OK);
    struct tern_prop_iter it;
    struct tern_prop pr;
    tern_props_iter_init(&it, p);
    const char *want = "123";
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(tern_props_next(&it, &pr), 1);
        CHECK_EQ(pr.val_len, 1);
        CHECK_EQ(pr.val[0], want[i]);
    }
    CHECK_EQ(tern_props_next(&it, &pr), 0);
}

struct range_case {
    const char *name;
    uint8_t ptype;
    bool will;
    uint8_t bytes[8];
    size_t len;
    int err;
    uint8_t reason;
};

static void test_value_ranges(void)
{
    static const struct range_case cases[] = {
        {"payload format 0", TERN_PUBLISH, false, {0x01, 0x00}, 2, TERN_OK, 0},
        {"payload format 1 will", TERN_CONNECT, true, {0x01, 0x01}, 2, TERN_OK, 0},
        {"payload format 2", TERN_PUBLISH, false, {0x01, 0x02}, 2, TERN_EPROTOCOL, 0x82},
        {"payload format 255 will", TERN_CONNECT, true, {0x01, 0xFF}, 2, TERN_EPROTOCOL, 0x82},
        {"request problem 2", TERN_CONNECT, false, {0x17, 0x02}, 2, TERN_EPROTOCOL, 0x82},
        {"request problem 0", TERN_CONNECT, false, {0x17, 0x00}, 2, TERN_OK, 0},
        {"request response 2", TERN_CONNECT, false, {0x19, 0x02}, 2, TERN_EPROTOCOL, 0x82},
        {"maximum qos 0", TERN_CONNACK, false, {0x24, 0x00}, 2, TERN_OK, 0},
        {"maximum qos 2", TERN_CONNACK, false, {0x24, 0x02}, 2, TERN_EPROTOCOL, 0x82},
        {"retain available 2", TERN_CONNACK, false, {0x25, 0x02}, 2, TERN_EPROTOCOL, 0x82},
        {"wildcard available 2", TERN_CONNACK, false, {0x28, 0x02}, 2, TERN_EPROTOCOL, 0x82},
        {"subid available 2", TERN_CONNACK, false, {0x29, 0x02}, 2, TERN_EPROTOCOL, 0x82},
        {"shared available 2", TERN_CONNACK, false, {0x2A, 0x02}, 2, TERN_EPROTOCOL, 0x82},
        {"receive maximum 0", TERN_CONNECT, false, {0x21, 0, 0}, 3, TERN_EPROTOCOL, 0x82},
        {"receive maximum 1", TERN_CONNACK, false, {0x21, 0, 1}, 3, TERN_OK, 0},
        {"max packet size 0", TERN_CONNECT, false, {0x27, 0, 0, 0, 0}, 5, TERN_EPROTOCOL, 0x82},
        {"max packet size 1", TERN_CONNACK, false, {0x27, 0, 0, 0, 1}, 5, TERN_OK, 0},
        {"subscription id 0", TERN_SUBSCRIBE, false, {0x0B, 0x00}, 2, TERN_EPROTOCOL, 0x82},
        {"subscription id max", TERN_PUBLISH, false, {0x0B, 0xFF, 0xFF, 0xFF, 0x7F}, 5, TERN_OK, 0},
        {"subscription id overlong",
         TERN_PUBLISH,
         false,
         {0x0B, 0x81, 0x00},
         3,
         TERN_EMALFORMED,
         0x81},
        {"subscription id 5 bytes",
         TERN_PUBLISH,
         false,
         {0x0B, 0x81, 0x81, 0x81, 0x81, 0x01},
         6,
         TERN_EMALFORMED,
         0x81},
        {"topic alias 0", TERN_PUBLISH, false, {0x23, 0, 0}, 3, TERN_EPROTOCOL, 0x94},
        {"topic alias max 0", TERN_CONNECT, false, {0x22, 0, 0}, 3, TERN_OK, 0},
        {"server keep alive 0", TERN_CONNACK, false, {0x13, 0, 0}, 3, TERN_OK, 0},
        {"response topic wildcard",
         TERN_PUBLISH,
         false,
         {0x08, 0, 1, '+'},
         4,
         TERN_EPROTOCOL,
         0x82},
        {"response topic will #",
         TERN_CONNECT,
         true,
         {0x08, 0, 3, 'a', '/', '#'},
         6,
         TERN_EPROTOCOL,
         0x82},
        {"response topic ok", TERN_CONNECT, true, {0x08, 0, 3, 'a', '/', 'b'}, 6, TERN_OK, 0},
        {"content type bad utf8",
         TERN_PUBLISH,
         false,
         {0x03, 0, 2, 0xC3, 0x28},
         5,
         TERN_EMALFORMED,
         0x81},
        {"content type nul", TERN_PUBLISH, false, {0x03, 0, 1, 0x00}, 4, TERN_EMALFORMED, 0x81},
        {"correlation data binary", TERN_PUBLISH, false, {0x09, 0, 2, 0x00, 0xFF}, 5, TERN_OK, 0},
        {"auth data binary with method",
         TERN_AUTH,
         false,
         {0x15, 0, 0, 0x16, 0, 1, 0xFF},
         7,
         TERN_OK,
         0},
        {"auth data without method",
         TERN_CONNACK,
         false,
         {0x16, 0, 1, 0xFF},
         4,
         TERN_EPROTOCOL,
         0x82},
        {"user property value bad",
         TERN_PUBACK,
         false,
         {0x26, 0, 0, 0, 1, 0xFF},
         6,
         TERN_EMALFORMED,
         0x81},
        {"unknown id 0x00", TERN_PUBLISH, false, {0x00, 0x00}, 2, TERN_EMALFORMED, 0x81},
        {"unknown id 0x2B", TERN_PUBLISH, false, {0x2B, 0x00}, 2, TERN_EMALFORMED, 0x81},
        {"unknown id 0x8B (varint form)",
         TERN_PUBLISH,
         false,
         {0x8B, 0x00, 0x01},
         3,
         TERN_EMALFORMED,
         0x81},
        {"byte cut", TERN_PUBLISH, false, {0x01}, 1, TERN_EMALFORMED, 0x81},
        {"u16 cut", TERN_PUBLISH, false, {0x23, 0x00}, 2, TERN_EMALFORMED, 0x81},
        {"u32 cut", TERN_PUBLISH, false, {0x02, 0, 0, 0}, 4, TERN_EMALFORMED, 0x81},
        {"varint cut", TERN_PUBLISH, false, {0x0B, 0x80}, 2, TERN_EMALFORMED, 0x81},
        {"string length cut", TERN_PUBLISH, false, {0x03, 0x00}, 2, TERN_EMALFORMED, 0x81},
        {"string past end", TERN_PUBLISH, false, {0x03, 0x00, 0x02, 'a'}, 4, TERN_EMALFORMED, 0x81},
        {"pair value missing", TERN_PUBLISH, false, {0x26, 0, 1, 'k'}, 4, TERN_EMALFORMED, 0x81},
        {"pair value past end",
         TERN_PUBLISH,
         false,
         {0x26, 0, 1, 'k', 0, 2, 'v'},
         7,
         TERN_EMALFORMED,
         0x81},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct range_case *c = &cases[i];
        struct tern_props p = {c->bytes, c->len};
        uint8_t reason = 0xEE;
        int rc = tern_props_validate(p, c->ptype, c->will, &reason);
        if (rc != c->err || reason != c->reason) {
            fprintf(stderr, "  '%s': got %s reason 0x%02x, want %s 0x%02x\n", c->name,
                    tern_errname(rc), reason, tern_errname(c->err), c->reason);
            tern_test_failed_checks++;
        }
    }
}

static void test_iterator(void)
{
    static const uint8_t block[] = {
        0x01, 0x01,                                   /* payload format 1 */
        0x02, 0x00, 0x00, 0x01, 0x00,                 /* message expiry 256 */
        0x23, 0x12, 0x34,                             /* topic alias 0x1234 */
        0x0B, 0xC1, 0x02,                             /* subscription id 321 */
        0x03, 0x00, 0x02, 't',  'x',                  /* content type */
        0x09, 0x00, 0x00,                             /* empty correlation data */
        0x26, 0x00, 0x01, 'k',  0x00, 0x02, 'v', 'w', /* user property */
    };
    struct tern_props p = {block, sizeof(block)};
    CHECK_ERR(tern_props_validate(p, TERN_PUBLISH, false, NULL), TERN_OK);
    struct tern_prop_iter it;
    struct tern_prop pr;
    tern_props_iter_init(&it, p);
    CHECK_EQ(tern_props_next(&it, &pr), 1);
    CHECK_EQ(pr.id, 0x01);
    CHECK_EQ(pr.type, TERN_PTYPE_BYTE);
    CHECK_EQ(pr.num, 1);
    CHECK_EQ(tern_props_next(&it, &pr), 1);
    CHECK_EQ(pr.type, TERN_PTYPE_U32);
    CHECK_EQ(pr.num, 256);
    CHECK_EQ(tern_props_next(&it, &pr), 1);
    CHECK_EQ(pr.type, TERN_PTYPE_U16);
    CHECK_EQ(pr.num, 0x1234);
    CHECK_EQ(tern_props_next(&it, &pr), 1);
    CHECK_EQ(pr.type, TERN_PTYPE_VARINT);
    CHECK_EQ(pr.num, 321);
    CHECK_EQ(tern_props_next(&it, &pr), 1);
    CHECK_EQ(pr.type, TERN_PTYPE_UTF8);
    CHECK_EQ(pr.str_len, 2);
    CHECK(pr.str == block + 16);
    CHECK_EQ(tern_props_next(&it, &pr), 1);
    CHECK_EQ(pr.type, TERN_PTYPE_BINARY);
    CHECK_EQ(pr.str_len, 0);
    CHECK_EQ(tern_props_next(&it, &pr), 1);
    CHECK_EQ(pr.type, TERN_PTYPE_PAIR);
    CHECK_EQ(pr.str_len, 1);
    CHECK_EQ(pr.str[0], 'k');
    CHECK_EQ(pr.val_len, 2);
    CHECK_MEM(pr.val, "vw", 2);
    CHECK_EQ(tern_props_next(&it, &pr), 0);
    CHECK_EQ(tern_props_next(&it, &pr), 0);

    /* find */
    CHECK(tern_props_find(p, TERN_PROP_TOPIC_ALIAS, &pr));
    CHECK_EQ(pr.num, 0x1234);
    CHECK(!tern_props_find(p, TERN_PROP_REASON_STRING, &pr));
    struct tern_props empty = {NULL, 0};
    CHECK(!tern_props_find(empty, TERN_PROP_TOPIC_ALIAS, &pr));
    tern_props_iter_init(&it, empty);
    CHECK_EQ(tern_props_next(&it, &pr), 0);

    /* Every strict prefix that cuts a property is reported, never read past. */
    for (size_t k = 1; k < sizeof(block); k++) {
        struct tern_props cut = {block, k};
        int rc;
        tern_props_iter_init(&it, cut);
        while ((rc = tern_props_next(&it, &pr)) == 1) {
        }
        bool at_boundary = k == 2 || k == 7 || k == 10 || k == 13 || k == 18 || k == 21;
        CHECK_EQ(rc, at_boundary ? 0 : TERN_EMALFORMED);
        CHECK_ERR(tern_props_validate(cut, TERN_PUBLISH, false, NULL),
                  at_boundary ? TERN_OK : TERN_EMALFORMED);
    }
}

static void test_builder(void)
{
    uint8_t buf[128];
    struct tern_props_builder b;
    tern_props_builder_init(&b, buf, sizeof(buf));
    tern_props_add_byte(&b, TERN_PROP_PAYLOAD_FORMAT_INDICATOR, 1);
    tern_props_add_u16(&b, TERN_PROP_TOPIC_ALIAS, 0x0102);
    tern_props_add_u32(&b, TERN_PROP_MESSAGE_EXPIRY_INTERVAL, 0x01020304);
    tern_props_add_varint(&b, TERN_PROP_SUBSCRIPTION_IDENTIFIER, 16384);
    tern_props_add_str(&b, TERN_PROP_CONTENT_TYPE, "ct", 2);
    tern_props_add_str(&b, TERN_PROP_CORRELATION_DATA, "\0", 1);
    tern_props_add_pair(&b, TERN_PROP_USER_PROPERTY, "k", 1, "", 0);
    static const uint8_t want[] = {
        0x01, 0x01, 0x23, 0x01, 0x02, 0x02, 0x01, 0x02, 0x03, 0x04, 0x0B, 0x80, 0x80, 0x01, 0x03,
        0x00, 0x02, 'c',  't',  0x09, 0x00, 0x01, 0x00, 0x26, 0x00, 0x01, 'k',  0x00, 0x00,
    };
    CHECK(!b.overflow);
    CHECK(!b.invalid);
    CHECK_EQ(b.len, sizeof(want));
    struct tern_props p = tern_props_builder_result(&b);
    CHECK(p.ptr == buf);
    CHECK_EQ(p.len, sizeof(want));
    CHECK_MEM(buf, want, sizeof(want));
    CHECK_ERR(tern_props_validate(p, TERN_PUBLISH, false, NULL), TERN_OK);

    /* Copy-through with add_prop reproduces the block. */
    uint8_t copy[128];
    struct tern_props_builder c;
    tern_props_builder_init(&c, copy, sizeof(copy));
    struct tern_prop_iter it;
    struct tern_prop pr;
    tern_props_iter_init(&it, p);
    while (tern_props_next(&it, &pr) == 1) {
        tern_props_add_prop(&c, &pr);
    }
    CHECK(!c.overflow && !c.invalid);
    CHECK_EQ(c.len, sizeof(want));
    CHECK_MEM(copy, want, sizeof(want));

    /* Overflow: keeps counting, never writes past cap. */
    for (size_t cap = 0; cap < sizeof(want); cap++) {
        uint8_t small[sizeof(want) + 8];
        memset(small, 0xAA, sizeof(small));
        struct tern_props_builder o;
        tern_props_builder_init(&o, small, cap);
        tern_props_iter_init(&it, p);
        while (tern_props_next(&it, &pr) == 1) {
            tern_props_add_prop(&o, &pr);
        }
        CHECK(o.overflow);
        CHECK(!o.invalid);
        CHECK_EQ(o.len, sizeof(want));
        for (size_t i = cap; i < sizeof(small); i++) {
            CHECK_EQ(small[i], 0xAA);
        }
    }
    /* A NULL buffer sizes the block. */
    struct tern_props_builder z;
    tern_props_builder_init(&z, NULL, 0);
    tern_props_add_u32(&z, TERN_PROP_SESSION_EXPIRY_INTERVAL, 5);
    CHECK_EQ(z.len, 5);
    CHECK(z.overflow);

    /* Invalid: wrong type for the id, unknown id, varint too large, strings too long. */
    static const uint8_t huge[1] = {0};
    struct {
        int which;
    } bad[] = {{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tern_props_builder v;
        tern_props_builder_init(&v, buf, sizeof(buf));
        switch (bad[i].which) {
        case 0:
            tern_props_add_byte(&v, TERN_PROP_TOPIC_ALIAS, 1);
            break;
        case 1:
            tern_props_add_u16(&v, TERN_PROP_MAXIMUM_QOS, 1);
            break;
        case 2:
            tern_props_add_u32(&v, 0x05, 1);
            break;
        case 3:
            tern_props_add_varint(&v, TERN_PROP_SUBSCRIPTION_IDENTIFIER, TERN_VARINT_MAX + 1);
            break;
        case 4:
            tern_props_add_varint(&v, TERN_PROP_TOPIC_ALIAS, 1);
            break;
        case 5:
            tern_props_add_str(&v, TERN_PROP_CONTENT_TYPE, huge, 65536);
            break;
        case 6:
            tern_props_add_str(&v, TERN_PROP_USER_PROPERTY, "a", 1);
            break;
        case 7:
            tern_props_add_pair(&v, TERN_PROP_USER_PROPERTY, huge, 65536, "v", 1);
            break;
        case 8:
            tern_props_add_pair(&v, TERN_PROP_CONTENT_TYPE, "k", 1, "v", 1);
            break;
        default: {
            struct tern_prop u = {.id = 0x7F};
            tern_props_add_prop(&v, &u);
            break;
        }
        }
        if (!v.invalid) {
            fprintf(stderr, "  builder invalid case %d not flagged\n", bad[i].which);
            tern_test_failed_checks++;
        }
        CHECK_EQ(v.len, 0);
    }
    /* A 65535-byte string is the largest that fits. */
    static uint8_t max_str[65535];
    static uint8_t max_buf[65540];
    memset(max_str, 'x', sizeof(max_str));
    struct tern_props_builder m;
    tern_props_builder_init(&m, max_buf, sizeof(max_buf));
    tern_props_add_str(&m, TERN_PROP_REASON_STRING, max_str, sizeof(max_str));
    CHECK(!m.invalid && !m.overflow);
    CHECK_EQ(m.len, 3 + 65535);
    CHECK_ERR(tern_props_validate(tern_props_builder_result(&m), TERN_PUBACK, false, NULL),
              TERN_OK);
}

static const struct tern_test tests[] = {
    {"types_and_names", test_types_and_names},
    {"allowed_matrix", test_allowed_matrix},
    {"repetition", test_repetition},
    {"value_ranges", test_value_ranges},
    {"iterator", test_iterator},
    {"builder", test_builder},
    {NULL, NULL},
};

TERN_TEST_MAIN("props", tests)
