/* SPDX-License-Identifier: MIT */
/*
 * Logging with levels and a callback. Libraries never write to stdout/stderr: messages go to
 * the callback installed by the program (ternd writes them to stdout; libtern hands them to the
 * application). With no callback installed, messages are dropped. Messages below the current
 * level are filtered before formatting, so a disabled debug line costs one load and compare.
 */
#ifndef TERN_COMMON_LOG_H
#define TERN_COMMON_LOG_H

enum tern_log_level {
    TERN_LOG_DEBUG = 0,
    TERN_LOG_INFO = 1,
    TERN_LOG_NOTICE = 2,
    TERN_LOG_WARNING = 3,
    TERN_LOG_ERROR = 4,
    TERN_LOG_NONE = 5,
};

/* Receives each formatted message (no trailing newline); `msg` is valid during the call. */
typedef void (*tern_log_fn)(enum tern_log_level level, const char *msg, void *userdata);

/* Install the callback (NULL drops everything). Not thread-safe: call at start-up. */
void tern_log_set_callback(tern_log_fn fn, void *userdata);
void tern_log_set_level(enum tern_log_level level);
enum tern_log_level tern_log_get_level(void);
/* "debug", "info", "notice", "warning", "error". */
const char *tern_log_level_name(enum tern_log_level level);
/* Parse a level name as written above; returns -1 when unknown. */
int tern_log_level_parse(const char *name);

__attribute__((format(printf, 2, 3))) void tern_log(enum tern_log_level level, const char *fmt,
                                                    ...);

#endif /* TERN_COMMON_LOG_H */
