/* SPDX-License-Identifier: MIT */
/*
 * Whole-file reads with a size cap. The buffer grows by doubling while reading, so files whose
 * size stat() would misreport (pipes, /proc) still read correctly.
 */
#include "common/file.h"

#include "common/alloc.h"
#include "tern/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int tern_file_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return TERN_ECONFIG;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = TERN_OK;
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max) {
                snprintf(err, errlen, "%s: file larger than %zu bytes", path, max);
                rc = TERN_ECONFIG;
                goto done;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            char *nb = tern_realloc(buf, ncap);
            if (nb == NULL) {
                rc = TERN_ENOMEM;
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s: read error", path);
                rc = TERN_ECONFIG;
                goto done;
            }
            break;
        }
    }
    if (n > max) {
        snprintf(err, errlen, "%s: file larger than %zu bytes", path, max);
        rc = TERN_ECONFIG;
        goto done;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
done:
    tern_free(buf);
    fclose(f);
    return rc;
}
