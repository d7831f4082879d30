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

#endif /* TERN_COMMON_FILE_H */
