/* SPDX-License-Identifier: MIT */
/*
 * MQTT constants shared by the codec, broker and client: protocol levels, packet types,
 * MQTT 5 reason codes, property identifiers and CONNACK return codes of 3.1/3.1.1.
 * Values are the on-the-wire numbers from the specifications.
 */
#ifndef TERN_PROTOCOL_MQTT_H
#define TERN_PROTOCOL_MQTT_H

#include <stdint.h>

/* Protocol level byte of CONNECT. */
enum tern_mqtt_version {
    TERN_MQTT_31 = 3,  /* protocol name "MQIsdp" */
    TERN_MQTT_311 = 4, /* protocol name "MQTT" */
    TERN_MQTT_5 = 5,
};

enum tern_packet_type {
    TERN_CONNECT = 1,
    TERN_CONNACK = 2,
    TERN_PUBLISH = 3,
    TERN_PUBACK = 4,
    TERN_PUBREC = 5,
    TERN_PUBREL = 6,
    TERN_PUBCOMP = 7,
    TERN_SUBSCRIBE = 8,
    TERN_SUBACK = 9,
    TERN_UNSUBSCRIBE = 10,
    TERN_UNSUBACK = 11,
    TERN_PINGREQ = 12,
    TERN_PINGRESP = 13,
    TERN_DISCONNECT = 14,
    TERN_AUTH = 15, /* MQTT 5 only */
};

/* MQTT 5 reason codes (2.4). 3.1.1 uses a subset through the mapping in the broker. */
#define TERN_REASON_MAP(X)                          \
    X(SUCCESS, 0x00)                                \
    X(GRANTED_QOS1, 0x01)                           \
    X(GRANTED_QOS2, 0x02)                           \
    X(DISCONNECT_WITH_WILL, 0x04)                   \
    X(NO_MATCHING_SUBSCRIBERS, 0x10)                \
    X(NO_SUBSCRIPTION_EXISTED, 0x11)                \
    X(CONTINUE_AUTHENTICATION, 0x18)                \
    X(REAUTHENTICATE, 0x19)                         \
    X(UNSPECIFIED_ERROR, 0x80)                      \
    X(MALFORMED_PACKET, 0x81)                       \
    X(PROTOCOL_ERROR, 0x82)                         \
    X(IMPLEMENTATION_SPECIFIC_ERROR, 0x83)          \
    X(UNSUPPORTED_PROTOCOL_VERSION, 0x84)           \
    X(CLIENT_IDENTIFIER_NOT_VALID, 0x85)            \
    X(BAD_USER_NAME_OR_PASSWORD, 0x86)              \
    X(NOT_AUTHORIZED, 0x87)                         \
    X(SERVER_UNAVAILABLE, 0x88)                     \
    X(SERVER_BUSY, 0x89)                            \
    X(BANNED, 0x8A)                                 \
    X(SERVER_SHUTTING_DOWN, 0x8B)                   \
    X(BAD_AUTHENTICATION_METHOD, 0x8C)              \
    X(KEEP_ALIVE_TIMEOUT, 0x8D)                     \
    X(SESSION_TAKEN_OVER, 0x8E)                     \
    X(TOPIC_FILTER_INVALID, 0x8F)                   \
    X(TOPIC_NAME_INVALID, 0x90)                     \
    X(PACKET_IDENTIFIER_IN_USE, 0x91)               \
    X(PACKET_IDENTIFIER_NOT_FOUND, 0x92)            \
    X(RECEIVE_MAXIMUM_EXCEEDED, 0x93)               \
    X(TOPIC_ALIAS_INVALID, 0x94)                    \
    X(PACKET_TOO_LARGE, 0x95)                       \
    X(MESSAGE_RATE_TOO_HIGH, 0x96)                  \
    X(QUOTA_EXCEEDED, 0x97)                         \
    X(ADMINISTRATIVE_ACTION, 0x98)                  \
    X(PAYLOAD_FORMAT_INVALID, 0x99)                 \
    X(RETAIN_NOT_SUPPORTED, 0x9A)                   \
    X(QOS_NOT_SUPPORTED, 0x9B)                      \
    X(USE_ANOTHER_SERVER, 0x9C)                     \
    X(SERVER_MOVED, 0x9D)                           \
    X(SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, 0x9E)     \
    X(CONNECTION_RATE_EXCEEDED, 0x9F)               \
    X(MAXIMUM_CONNECT_TIME, 0xA0)                   \
    X(SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, 0xA1) \
    X(WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED, 0xA2)

enum tern_reason {
#define TERN__REASON_ENUM(name, value) TERN_RC_##name = value,
    TERN_REASON_MAP(TERN__REASON_ENUM)
#undef TERN__REASON_ENUM
};

/* "SUCCESS", "MALFORMED_PACKET", ...; "UNKNOWN" for other values. */
const char *tern_reason_name(uint8_t reason);

/* CONNACK return codes of MQTT 3.1 / 3.1.1 (3.2.2.3). */
enum tern_connack_v3 {
    TERN_CONNACK3_ACCEPTED = 0,
    TERN_CONNACK3_BAD_PROTOCOL_VERSION = 1,
    TERN_CONNACK3_IDENTIFIER_REJECTED = 2,
    TERN_CONNACK3_SERVER_UNAVAILABLE = 3,
    TERN_CONNACK3_BAD_USERNAME_PASSWORD = 4,
    TERN_CONNACK3_NOT_AUTHORIZED = 5,
};

/* MQTT 5 property identifiers (2.2.2.2). */
enum tern_prop_id {
    TERN_PROP_PAYLOAD_FORMAT_INDICATOR = 0x01,          /* byte */
    TERN_PROP_MESSAGE_EXPIRY_INTERVAL = 0x02,           /* u32 */
    TERN_PROP_CONTENT_TYPE = 0x03,                      /* utf8 */
    TERN_PROP_RESPONSE_TOPIC = 0x08,                    /* utf8 (topic name) */
    TERN_PROP_CORRELATION_DATA = 0x09,                  /* binary */
    TERN_PROP_SUBSCRIPTION_IDENTIFIER = 0x0B,           /* varint */
    TERN_PROP_SESSION_EXPIRY_INTERVAL = 0x11,           /* u32 */
    TERN_PROP_ASSIGNED_CLIENT_IDENTIFIER = 0x12,        /* utf8 */
    TERN_PROP_SERVER_KEEP_ALIVE = 0x13,                 /* u16 */
    TERN_PROP_AUTHENTICATION_METHOD = 0x15,             /* utf8 */
    TERN_PROP_AUTHENTICATION_DATA = 0x16,               /* binary */
    TERN_PROP_REQUEST_PROBLEM_INFORMATION = 0x17,       /* byte */
    TERN_PROP_WILL_DELAY_INTERVAL = 0x18,               /* u32 */
    TERN_PROP_REQUEST_RESPONSE_INFORMATION = 0x19,      /* byte */
    TERN_PROP_RESPONSE_INFORMATION = 0x1A,              /* utf8 */
    TERN_PROP_SERVER_REFERENCE = 0x1C,                  /* utf8 */
    TERN_PROP_REASON_STRING = 0x1F,                     /* utf8 */
    TERN_PROP_RECEIVE_MAXIMUM = 0x21,                   /* u16 */
    TERN_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,               /* u16 */
    TERN_PROP_TOPIC_ALIAS = 0x23,                       /* u16 */
    TERN_PROP_MAXIMUM_QOS = 0x24,                       /* byte */
    TERN_PROP_RETAIN_AVAILABLE = 0x25,                  /* byte */
    TERN_PROP_USER_PROPERTY = 0x26,                     /* utf8 pair */
    TERN_PROP_MAXIMUM_PACKET_SIZE = 0x27,               /* u32 */
    TERN_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28,   /* byte */
    TERN_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29, /* byte */
    TERN_PROP_SHARED_SUBSCRIPTION_AVAILABLE = 0x2A,     /* byte */
};

/* Largest value a Variable Byte Integer can hold (4 bytes): 268,435,455. */
#define TERN_VARINT_MAX 268435455u

/* Subscription option bits (3.8.3.1). */
#define TERN_SUBOPT_QOS_MASK           0x03u
#define TERN_SUBOPT_NO_LOCAL           0x04u
#define TERN_SUBOPT_RETAIN_AS_PUB      0x08u
#define TERN_SUBOPT_RETAIN_HANDLING(o) (((o) >> 4) & 0x03u)

#endif /* TERN_PROTOCOL_MQTT_H */
