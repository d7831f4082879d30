/* SPDX-License-Identifier: MIT */
/*
 * Error code names and messages, generated from the single TERN_ERR_MAP list in
 * <tern/error.h> so the enum, names and messages stay in step.
 */
#include "tern/error.h"

const char *tern_strerror(int err)
{
    switch (err) {
#define TERN__ERR_MSG(name, value, msg) \
    case value:                         \
        return msg;
        TERN_ERR_MAP(TERN__ERR_MSG)
#undef TERN__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *tern_errname(int err)
{
    switch (err) {
#define TERN__ERR_NAME(name, value, msg) \
    case value:                          \
        return "TERN_" #name;
        TERN_ERR_MAP(TERN__ERR_NAME)
#undef TERN__ERR_NAME
    default:
        return "TERN_E?";
    }
}
