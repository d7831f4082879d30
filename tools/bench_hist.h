/* SPDX-License-Identifier: MIT */
/*
 * Measurement pieces of `tern bench`: a log-bucketed latency histogram (HDR-style: exact below
 * 64, then 32 linear sub-buckets per power of two, so any value is reported within 1/32 = 3.1 %
 * above its true value) and a per-stream sequence tracker that classifies each received
 * sequence number as new, duplicate or out of order.
 *
 * Invariants: a histogram is a fixed array (no allocation, O(1) record); percentiles report
 * the highest value of the bucket holding the rank, capped at the exact maximum seen. A stream
 * remembers which of the last BENCH_SEQ_WINDOW sequence numbers below its highest one it has
 * seen; anything older is counted as out of order (it cannot be told from a duplicate).
 */
#ifndef TERN_TOOLS_BENCH_HIST_H
#define TERN_TOOLS_BENCH_HIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_HIST_BUCKETS 1920 /* 64 exact + 58 powers of two x 32 sub-buckets */

struct bench_hist {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t total;
    uint64_t min;
    uint64_t max;
    double sum;
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t v);
/* Add every count of `src` to `dst`. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* Value at quantile q (0..1), e.g. 0.99; 0 when empty. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);
double bench_hist_mean(const struct bench_hist *h);

#define BENCH_SEQ_WINDOW 1024

enum bench_seq_result { BENCH_SEQ_NEW = 0, BENCH_SEQ_DUP = 1, BENCH_SEQ_OOO = 2 };

/* Messages of one publisher as seen by one receiver. Zero-initialised = nothing seen. */
struct bench_stream {
    uint64_t next;   /* highest sequence seen + 1 (0: none yet) */
    uint64_t unique; /* distinct sequences seen */
    uint64_t seen[BENCH_SEQ_WINDOW / 64];
};

/* Record sequence number `seq`; returns enum bench_seq_result. */
int bench_stream_add(struct bench_stream *s, uint64_t seq);

#endif /* TERN_TOOLS_BENCH_HIST_H */
