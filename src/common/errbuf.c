/* SPDX-License-Identifier: MIT */
/* tern_errf (see errbuf.h). */
#include "common/errbuf.h"

#include <stdarg.h>
#include <stdio.h>

void tern_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
