/* SPDX-License-Identifier: MIT */
/*
 * $SYS/broker/... topics with Mosquitto's names, published as retained QoS 0 messages every
 * sys_interval seconds by worker 0. Load figures are exponentially weighted moving averages of
 * the per-minute rates over 1, 5 and 15 minutes, as Mosquitto computes them. Runs on one thread
 * only (worker 0, or the main thread before the workers start), so the static state needs no
 * lock; the counters it reads are relaxed atomics.
 */
#include "broker/broker.h"

#include "broker/conn.h"
#include "broker/retain.h"
#include "broker/subtree.h"
#include "common/log.h"
#include "common/time.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { L_MSG_RX, L_MSG_TX, L_PUB_RX, L_PUB_TX, L_PUB_DROP, L_BYTES_RX, L_BYTES_TX, L_CONN, L_N };

static const char *const load_names[L_N] = {
    "messages/received", "messages/sent",  "publish/received", "publish/sent",
    "publish/dropped",   "bytes/received", "bytes/sent",       "connections",
};

static double load_avg[L_N][3];
static uint64_t load_last[L_N];
static uint64_t load_last_ms;

static void pub(struct tern_broker *b, const char *topic, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void pub(struct tern_broker *b, const char *topic, const char *fmt, ...)
{
    char payload[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(payload, sizeof payload, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= sizeof payload) {
        n = (int)sizeof payload - 1;
    }
    struct tern_msg *m =
        tern_msg_new((const uint8_t *)topic, strlen(topic), (const uint8_t *)payload, (size_t)n,
                     NULL, 0, 0, true, 0, NULL);
    if (m) {
        tern__route_publish_owned(b, m);
    }
}

static uint64_t ld(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

void tern__sys_publish(struct tern_broker *b)
{
    struct tern_stats *st = &b->stats;
    uint64_t now = tern_time_mono_ms();
    uint64_t cur[L_N] = {
        ld(&st->msgs_received), ld(&st->msgs_sent),         ld(&st->pub_received),
        ld(&st->pub_sent),      ld(&st->pub_dropped),       ld(&st->bytes_received),
        ld(&st->bytes_sent),    ld(&st->connections_total),
    };
    if (load_last_ms != 0 && now > load_last_ms) {
        double dt_min = (double)(now - load_last_ms) / 60000.0;
        static const double periods[3] = {1.0, 5.0, 15.0};
        for (int i = 0; i < L_N; i++) {
            double rate = (double)(cur[i] - load_last[i]) / dt_min;
            for (int k = 0; k < 3; k++) {
                double f = exp(-dt_min / periods[k]);
                load_avg[i][k] = rate + f * (load_avg[i][k] - rate);
            }
        }
    }
    memcpy(load_last, cur, sizeof cur);
    load_last_ms = now;

    long connected = atomic_load(&st->clients_connected);
    long sessions = (long)tern_registry_count();
    long disconnected = sessions > connected ? sessions - connected : 0;
    pub(b, "$SYS/broker/version", "ternd version %s", TERN_VERSION);
    pub(b, "$SYS/broker/uptime", "%llu seconds", (unsigned long long)((now - b->start_ms) / 1000u));
    pub(b, "$SYS/broker/clients/connected", "%ld", connected);
    pub(b, "$SYS/broker/clients/active", "%ld", connected);
    pub(b, "$SYS/broker/clients/disconnected", "%ld", disconnected);
    pub(b, "$SYS/broker/clients/inactive", "%ld", disconnected);
    pub(b, "$SYS/broker/clients/total", "%ld", connected + disconnected);
    pub(b, "$SYS/broker/clients/maximum", "%ld", atomic_load(&st->clients_maximum));
    pub(b, "$SYS/broker/messages/received", "%llu", (unsigned long long)cur[L_MSG_RX]);
    pub(b, "$SYS/broker/messages/sent", "%llu", (unsigned long long)cur[L_MSG_TX]);
    pub(b, "$SYS/broker/publish/messages/received", "%llu", (unsigned long long)cur[L_PUB_RX]);
    pub(b, "$SYS/broker/publish/messages/sent", "%llu", (unsigned long long)cur[L_PUB_TX]);
    pub(b, "$SYS/broker/publish/messages/dropped", "%llu", (unsigned long long)cur[L_PUB_DROP]);
    pub(b, "$SYS/broker/publish/publishers/paused", "%llu",
        (unsigned long long)atomic_load(&tern__backpressure_pauses));
    pub(b, "$SYS/broker/connections/migrated", "%llu",
        (unsigned long long)atomic_load(&st->conn_migrated));
    pub(b, "$SYS/broker/bytes/received", "%llu", (unsigned long long)cur[L_BYTES_RX]);
    pub(b, "$SYS/broker/bytes/sent", "%llu", (unsigned long long)cur[L_BYTES_TX]);
    pub(b, "$SYS/broker/memory/limit/refused", "%llu", (unsigned long long)ld(&st->mem_refused));
    pub(b, "$SYS/broker/memory/limit/dropped", "%llu", (unsigned long long)ld(&st->mem_dropped));
    pub(b, "$SYS/broker/retained messages/count", "%zu", tern_retain_count(b->retain));
    pub(b, "$SYS/broker/subscriptions/count", "%zu", tern_subtree_count(b->subs));
    static const char *const suffix[3] = {"1min", "5min", "15min"};
    for (int i = 0; i < L_N; i++) {
        for (int k = 0; k < 3; k++) {
            char topic[96];
            snprintf(topic, sizeof topic, "$SYS/broker/load/%s/%s", load_names[i], suffix[k]);
            pub(b, topic, "%.2f", load_avg[i][k]);
        }
    }
}
