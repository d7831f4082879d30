/* SPDX-License-Identifier: MIT */
/* Thin wrappers over clock_gettime. CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
#include "common/time.h"

#include <time.h>

static uint64_t ns_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t tern_time_mono_ns(void)
{
    return ns_of(CLOCK_MONOTONIC);
}

uint64_t tern_time_mono_ms(void)
{
    return ns_of(CLOCK_MONOTONIC) / 1000000u;
}

int64_t tern_time_real_s(void)
{
    return (int64_t)(ns_of(CLOCK_REALTIME) / 1000000000u);
}

int64_t tern_time_real_ms(void)
{
    return (int64_t)(ns_of(CLOCK_REALTIME) / 1000000u);
}
