/* SPDX-License-Identifier: MIT */
/*
 * Clocks. Timeouts and expiry use the monotonic clock (never jumps with wall-clock changes);
 * wall-clock time is only for what users read ($SYS, logs) and for persisted deadlines.
 */
#ifndef TERN_COMMON_TIME_H
#define TERN_COMMON_TIME_H

#include <stdint.h>

/* Monotonic time in nanoseconds / milliseconds since an arbitrary start. */
uint64_t tern_time_mono_ns(void);
uint64_t tern_time_mono_ms(void);
/* Wall-clock seconds and milliseconds since the Unix epoch. */
int64_t tern_time_real_s(void);
int64_t tern_time_real_ms(void);

#endif /* TERN_COMMON_TIME_H */
