/* SPDX-License-Identifier: MIT */
/*
 * Level-filtered logging through one process-wide callback. Messages are formatted into a
 * stack buffer (truncated past 1 KiB, marked with "...") so logging never allocates.
 */
#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static tern_log_fn log_fn;
static void *log_userdata;
static _Atomic int log_level = TERN_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "notice", "warning", "error", "none"};

void tern_log_set_callback(tern_log_fn fn, void *userdata)
{
    log_fn = fn;
    log_userdata = userdata;
}

void tern_log_set_level(enum tern_log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum tern_log_level tern_log_get_level(void)
{
    return (enum tern_log_level)atomic_load(&log_level);
}

const char *tern_log_level_name(enum tern_log_level level)
{
    if ((unsigned)level > TERN_LOG_NONE) {
        return "?";
    }
    return level_names[level];
}

int tern_log_level_parse(const char *name)
{
    for (int i = 0; i <= TERN_LOG_NONE; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void tern_log(enum tern_log_level level, const char *fmt, ...)
{
    if ((int)level < atomic_load_explicit(&log_level, memory_order_relaxed) || log_fn == NULL) {
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof msg) {
        memcpy(msg + sizeof msg - 4, "...", 4);
    }
    log_fn(level, msg, log_userdata);
}
