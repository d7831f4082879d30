/* SPDX-License-Identifier: MIT */
/*
 * Whole-file reads for the small text files Tern loads (password, ACL files): the file is read
 * into one allocation, NUL-terminated, never larger than the caller's maximum.
 */
#ifndef TERN_COMMON_FILE_H
#define TERN_COMMON_FILE_H

#include <stddef.h>

/*
 * Read the file at `path` into *out (owned by the caller, free with tern_free; NUL-terminated,
 * *len excludes the NUL). Returns TERN_OK, TERN_ECONFIG (cannot open or read, or larger than
 * max bytes; the message, naming the file, goes to err) or TERN_ENOMEM.
 */
int tern_file_read(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);

/*
 * Line reader for `#`-commented text files (password, ACL files). Lines end at '\n'; each line
 * is trimmed of spaces, tabs and CRs; empty lines and lines starting with '#' are skipped.
 */
struct tern_line_reader {
    const char *text;
    size_t len;
    size_t pos;
    unsigned lineno; /* number of the line last returned (1-based) */
};

void tern_line_reader_init(struct tern_line_reader *r, const char *text, size_t len);
/*
 * Next meaningful line: returns 1 and sets *line / *len (a view into the text), 0 at the end,
 * TERN_ETOOBIG for a line longer than max_len bytes, TERN_EMALFORMED for a NUL byte in a line.
 * On an error r->lineno names the offending line.
 */
int tern_line_reader_next(struct tern_line_reader *r, size_t max_len, const char **line,
                          size_t *len);

/* True for the blanks the line reader trims: space, tab, CR. */
static inline int tern_is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

#endif /* TERN_COMMON_FILE_H */
