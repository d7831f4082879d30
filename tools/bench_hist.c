/* SPDX-License-Identifier: MIT */
/*
 * Latency histogram and sequence tracking of `tern bench` (see bench_hist.h). Bucket index of a
 * value v >= 64 with highest set bit m: (m - 5) * 32 + (v >> (m - 5)), whose second term is in
 * [32, 64); so buckets are contiguous, monotonic in v, and 1920 cover all of uint64_t.
 */
#include "bench_hist.h"

#include <string.h>

void bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static size_t bucket_of(uint64_t v)
{
    if (v < 64) {
        return (size_t)v;
    }
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - 5;
    return (size_t)shift * 32 + (size_t)(v >> shift);
}

/* Highest value that falls in bucket `idx`. */
static uint64_t bucket_high(size_t idx)
{
    if (idx < 64) {
        return idx;
    }
    unsigned shift = (unsigned)(idx / 32) - 1;
    uint64_t m = idx - (uint64_t)shift * 32;
    uint64_t low = m << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

void bench_hist_add(struct bench_hist *h, uint64_t v)
{
    h->counts[bucket_of(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        dst->counts[i] += src->counts[i];
    }
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->total > 0 && src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (h->total == 0) {
        return 0;
    }
    double r = q * (double)h->total;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r || rank == 0) {
        rank++;
    }
    if (rank > h->total) {
        rank = h->total;
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}

static bool bit_get(const struct bench_stream *s, uint64_t seq)
{
    uint64_t b = seq % BENCH_SEQ_WINDOW;
    return (s->seen[b / 64] >> (b % 64)) & 1u;
}

static void bit_set(struct bench_stream *s, uint64_t seq, bool on)
{
    uint64_t b = seq % BENCH_SEQ_WINDOW;
    uint64_t mask = (uint64_t)1 << (b % 64);
    if (on) {
        s->seen[b / 64] |= mask;
    } else {
        s->seen[b / 64] &= ~mask;
    }
}

int bench_stream_add(struct bench_stream *s, uint64_t seq)
{
    if (seq >= s->next) {
        /* Slide the window: sequences next..seq-1 become "not seen", seq "seen". */
        if (seq - s->next >= BENCH_SEQ_WINDOW) {
            memset(s->seen, 0, sizeof(s->seen));
        } else {
            for (uint64_t q = s->next; q < seq; q++) {
                bit_set(s, q, false);
            }
        }
        bit_set(s, seq, true);
        s->next = seq + 1;
        s->unique++;
        return BENCH_SEQ_NEW;
    }
    if (s->next - seq > BENCH_SEQ_WINDOW) {
        s->unique++; /* too old to tell: assume a late first copy */
        return BENCH_SEQ_OOO;
    }
    if (bit_get(s, seq)) {
        return BENCH_SEQ_DUP;
    }
    bit_set(s, seq, true);
    s->unique++;
    return BENCH_SEQ_OOO;
}
