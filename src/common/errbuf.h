/* SPDX-License-Identifier: MIT */
/*
 * Error messages for the caller's buffer: loaders and openers (password, ACL, dynamic-security
 * and key files, the store, TLS contexts) say what went wrong in a `char *err, size_t errlen`
 * pair the caller passes, and print nothing themselves.
 */
#ifndef TERN_COMMON_ERRBUF_H
#define TERN_COMMON_ERRBUF_H

#include <stddef.h>

/* Format into err (errlen bytes, always NUL-terminated, truncated if needed); err may be NULL
 * or errlen 0, and then nothing is written. */
void tern_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* TERN_COMMON_ERRBUF_H */
