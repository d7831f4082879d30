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

void tern_line_reader_init(struct tern_line_reader *r, const char *text, size_t len)
{
    r->text = text;
    r->len = len;
    r->pos = 0;
    r->lineno = 0;
}

int tern_line_reader_next(struct tern_line_reader *r, size_t max_len, const char **line,
                          size_t *len)
{
    while (r->pos < r->len) {
        r->lineno++;
        const char *l = r->text + r->pos;
        const char *nl = memchr(l, '\n', r->len - r->pos);
        size_t ll = nl != NULL ? (size_t)(nl - l) : r->len - r->pos;
        r->pos += ll + (nl != NULL);
        if (ll > max_len) {
            return TERN_ETOOBIG;
        }
        if (memchr(l, '\0', ll) != NULL) {
            return TERN_EMALFORMED;
        }
        while (ll > 0 && tern_is_blank(l[ll - 1])) {
            ll--;
        }
        while (ll > 0 && tern_is_blank(l[0])) {
            l++;
            ll--;
        }
        if (ll == 0 || l[0] == '#') {
            continue;
        }
        *line = l;
        *len = ll;
        return 1;
    }
    return 0;
}
