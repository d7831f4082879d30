/* SPDX-License-Identifier: MIT */
/*
 * Tern error codes, shared by every layer and the public API.
 *
 * Every fallible function returns 0 (TERN_OK) on success or one of these negative codes; a
 * size-returning function returns ssize_t, >= 0 for a size. The list is one X-macro so the
 * enum, tern_errname() and tern_strerror() can never disagree.
 */
#ifndef TERN_ERROR_H
#define TERN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, "message") */
#define TERN_ERR_MAP(X)                         \
    X(OK, 0, "success")                         \
    X(ENOMEM, -1, "out of memory")              \
    X(EINVAL, -2, "invalid argument")           \
    X(ENEEDMORE, -3, "need more input")         \
    X(EMALFORMED, -4, "malformed packet")       \
    X(EPROTOCOL, -5, "protocol error")          \
    X(ETOOBIG, -6, "packet or value too large") \
    X(ENOSPC, -7, "buffer too small")           \
    X(EIO, -8, "input/output error")            \
    X(ECLOSED, -9, "connection closed")         \
    X(ETIMEDOUT, -10, "timed out")              \
    X(EEXIST, -11, "already exists")            \
    X(ENOTFOUND, -12, "not found")              \
    X(EUNSUPPORTED, -13, "not supported")       \
    X(EDENIED, -14, "not authorized")           \
    X(ECONFIG, -15, "configuration error")      \
    X(ESTORE, -16, "storage error")             \
    X(ECORRUPT, -17, "corrupt data")            \
    X(EOVERFLOW, -18, "limit reached")          \
    X(ETLS, -19, "TLS error")                   \
    X(ESYS, -20, "system call failed")          \
    X(EAGAIN, -21, "try again")                 \
    X(EBADUTF8, -22, "malformed UTF-8 string")  \
    X(EBADTOPIC, -23, "invalid topic name or filter")

enum tern_err {
#define TERN__ERR_ENUM(name, value, msg) TERN_##name = value,
    TERN_ERR_MAP(TERN__ERR_ENUM)
#undef TERN__ERR_ENUM
};

/* Human-readable message for an error code; never NULL ("unknown error" for others). */
const char *tern_strerror(int err);

/* Symbolic name such as "TERN_EMALFORMED"; never NULL ("TERN_E?" for unknown codes). */
const char *tern_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* TERN_ERROR_H */
