/* SPDX-License-Identifier: MIT */
/* Unit tests for src/common: error names, allocation fault injection, buffers, log, time. */
#include "test.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/file.h"
#include "common/log.h"
#include "common/pool.h"
#include "common/time.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static void test_error_names(void)
{
    CHECK(strcmp(tern_errname(TERN_EMALFORMED), "TERN_EMALFORMED") == 0);
    CHECK(strcmp(tern_strerror(TERN_OK), "success") == 0);
    CHECK(strcmp(tern_strerror(TERN_ENOMEM), "out of memory") == 0);
    CHECK(strcmp(tern_errname(12345), "TERN_E?") == 0);
    CHECK(strcmp(tern_strerror(-9999), "unknown error") == 0);
}

static void test_alloc_fail_nth(void)
{
    uint64_t before = tern_alloc_failed_count();
    tern_alloc_fail_after(3);
    void *a = tern_malloc(8);
    void *b = tern_calloc(2, 8);
    void *c = tern_malloc(8); /* the third fails */
    void *d = tern_malloc(8); /* and the hook is off again */
    CHECK(a != NULL);
    CHECK(b != NULL);
    CHECK(c == NULL);
    CHECK(d != NULL);
    CHECK_EQ(tern_alloc_failed_count(), before + 1);
    tern_free(a);
    tern_free(b);
    tern_free(d);
    tern_free(NULL);
    char *s = tern_strndup("hello world", 5);
    CHECK(s != NULL && strcmp(s, "hello") == 0);
    tern_free(s);
}

static void test_buf_cap_and_consume(void)
{
    struct tern_buf b;
    tern_buf_init(&b, 1000);
    CHECK_ERR(tern_buf_append(&b, "abcdef", 6), TERN_OK);
    CHECK_EQ(b.len, 6);
    tern_buf_consume(&b, 2);
    CHECK_MEM(tern_buf_head(&b), "cdef", 4);
    uint8_t big[1000];
    memset(big, 'x', sizeof big);
    /* 4 + 997 > max: refused, contents untouched */
    CHECK_ERR(tern_buf_append(&b, big, 997), TERN_EOVERFLOW);
    CHECK_EQ(b.len, 4);
    CHECK_ERR(tern_buf_append(&b, big, 996), TERN_OK);
    CHECK_EQ(b.len, 1000);
    CHECK_MEM(tern_buf_head(&b), "cdefxx", 6);
    tern_buf_consume(&b, 2000);
    CHECK_EQ(b.len, 0);
    tern_buf_shrink(&b, 0);
    CHECK(b.data == NULL);
    tern_buf_fini(&b);
}

static void test_buf_tail_commit_and_oom(void)
{
    struct tern_buf b;
    tern_buf_init(&b, 1 << 20);
    tern_alloc_fail_after(1);
    CHECK_ERR(tern_buf_reserve(&b, 10), TERN_ENOMEM);
    CHECK_ERR(tern_buf_reserve(&b, 10), TERN_OK);
    size_t room = 0;
    uint8_t *t = tern_buf_tail(&b, &room);
    CHECK(room >= 10);
    memcpy(t, "0123456789", 10);
    tern_buf_commit(&b, 10);
    tern_buf_consume(&b, 8);
    /* compaction keeps the unconsumed bytes */
    CHECK_ERR(tern_buf_reserve(&b, room - 2), TERN_OK);
    CHECK_MEM(tern_buf_head(&b), "89", 2);
    tern_buf_fini(&b);
}

static int seen_level = -1;
static char seen_msg[64];

static void capture(enum tern_log_level level, const char *msg, void *ud)
{
    (void)ud;
    seen_level = (int)level;
    snprintf(seen_msg, sizeof seen_msg, "%s", msg);
}

static void test_log_levels(void)
{
    tern_log_set_callback(capture, NULL);
    tern_log_set_level(TERN_LOG_WARNING);
    tern_log(TERN_LOG_INFO, "hidden %d", 1);
    CHECK_EQ(seen_level, -1);
    tern_log(TERN_LOG_ERROR, "shown %d", 2);
    CHECK_EQ(seen_level, TERN_LOG_ERROR);
    CHECK(strcmp(seen_msg, "shown 2") == 0);
    CHECK_EQ(tern_log_level_parse("notice"), TERN_LOG_NOTICE);
    CHECK_EQ(tern_log_level_parse("loud"), -1);
    tern_log_set_callback(NULL, NULL);
    tern_log_set_level(TERN_LOG_INFO);
}

static void test_time_monotonic(void)
{
    uint64_t a = tern_time_mono_ns();
    uint64_t b = tern_time_mono_ns();
    CHECK(b >= a);
    CHECK(tern_time_real_s() > 1600000000);
}

static void test_file_read(void)
{
    char path[] = "/tmp/tern-test-file-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 1000; i++) {
        fprintf(f, "line %04d\n", i); /* 10 bytes a line: 10,000 bytes, several reads */
    }
    fclose(f);
    char *buf = NULL;
    size_t len = 0;
    char err[256] = "";
    CHECK_ERR(tern_file_read(path, 1 << 20, &buf, &len, err, sizeof err), TERN_OK);
    CHECK_EQ(len, 10000);
    CHECK(buf != NULL && buf[len] == '\0' && memcmp(buf + 9990, "line 0999\n", 10) == 0);
    tern_free(buf);
    /* Over the cap: refused, and the message names the file. */
    CHECK_ERR(tern_file_read(path, 9999, &buf, &len, err, sizeof err), TERN_ECONFIG);
    CHECK(buf == NULL && strstr(err, path) != NULL);
    CHECK_ERR(tern_file_read(path, 10000, &buf, &len, err, sizeof err), TERN_OK);
    tern_free(buf);
    tern_alloc_fail_after(1);
    CHECK_ERR(tern_file_read(path, 1 << 20, &buf, &len, err, sizeof err), TERN_ENOMEM);
    unlink(path);
    CHECK_ERR(tern_file_read(path, 1 << 20, &buf, &len, err, sizeof err), TERN_ECONFIG);
    CHECK(strstr(err, path) != NULL && strstr(err, "No such file") != NULL);
}

static void test_line_reader(void)
{
    static const char text[] = "# comment\n\n  alpha \r\n\t# indented comment\nbeta\n"
                               "0123456789\ngam\0ma\nlast";
    struct tern_line_reader r;
    const char *line;
    size_t len;
    tern_line_reader_init(&r, text, sizeof text - 1);
    CHECK_EQ(tern_line_reader_next(&r, 32, &line, &len), 1);
    CHECK(len == 5 && memcmp(line, "alpha", 5) == 0);
    CHECK_EQ(r.lineno, 3);
    CHECK_EQ(tern_line_reader_next(&r, 32, &line, &len), 1);
    CHECK(len == 4 && memcmp(line, "beta", 4) == 0);
    CHECK_EQ(r.lineno, 5);
    CHECK_ERR(tern_line_reader_next(&r, 9, &line, &len), TERN_ETOOBIG); /* 10 bytes */
    CHECK_EQ(r.lineno, 6);
    CHECK_ERR(tern_line_reader_next(&r, 32, &line, &len), TERN_EMALFORMED);
    CHECK_EQ(r.lineno, 7);
    CHECK_EQ(tern_line_reader_next(&r, 32, &line, &len), 1); /* no final newline */
    CHECK(len == 4 && memcmp(line, "last", 4) == 0);
    CHECK_EQ(tern_line_reader_next(&r, 32, &line, &len), 0);
}

/* Pool: a thread with a cache gets its own freed blocks back (same address, zeroed by calloc);
 * large blocks and threads without a cache work plainly; injected failures apply to cached
 * allocations too. */
static void test_pool_single_thread(void)
{
    void *plain = tern_pool_alloc(100); /* no cache yet: a plain block */
    CHECK(plain != NULL);
    tern_pool_free(plain);
    CHECK_EQ(tern_pool_thread_init(), 0);
    CHECK_EQ(tern_pool_thread_init(), 0); /* idempotent */
    uint8_t *a = tern_pool_alloc(100);
    CHECK(a != NULL);
    memset(a, 0xAB, 100);
    tern_pool_free(a);
    uint8_t *b = tern_pool_calloc(90); /* same class: the block just freed, zeroed */
    CHECK(b == a);
    for (int i = 0; i < 90; i++) {
        CHECK_EQ(b[i], 0);
    }
    void *big = tern_pool_alloc(100000);
    CHECK(big != NULL);
    tern_pool_free(big);
    tern_pool_free(NULL);
    tern_alloc_fail_after(1);
    uint64_t failed = tern_alloc_failed_count();
    tern_pool_free(b);
    CHECK(tern_pool_alloc(90) == NULL); /* would have come from the cache */
    CHECK_EQ(tern_alloc_failed_count(), failed + 1);
    void *c = tern_pool_alloc(90);
    CHECK(c == b); /* the failure took nothing out of the cache */
    tern_pool_free(c);
    tern_pool_thread_release();
    tern_pool_shutdown();
}

#define POOL_N 1000

struct pool_xfer {
    void *blocks[POOL_N];
};

static void *pool_free_all(void *arg)
{
    struct pool_xfer *x = arg;
    CHECK_EQ(tern_pool_thread_init(), 0);
    for (int i = 0; i < POOL_N; i++) {
        tern_pool_free(x->blocks[i]);
    }
    tern_pool_flush(); /* the last partial batch */
    tern_pool_thread_release();
    return NULL;
}

static void *pool_free_plain(void *arg)
{
    struct pool_xfer *x = arg;
    for (int i = 0; i < POOL_N; i++) {
        tern_pool_free(x->blocks[i]); /* no cache: each goes straight back */
    }
    return NULL;
}

/* Blocks freed on other threads (with and without a cache) come back to the thread that made
 * them: after the frees, the maker allocates POOL_N blocks again and every one is one of its
 * old blocks. */
static void test_pool_cross_thread(void)
{
    CHECK_EQ(tern_pool_thread_init(), 0);
    void *(*freers[2])(void *) = {pool_free_all, pool_free_plain};
    for (int round = 0; round < 2; round++) {
        struct pool_xfer *x = tern_calloc(1, sizeof *x);
        CHECK(x != NULL);
        for (int i = 0; i < POOL_N; i++) {
            x->blocks[i] = tern_pool_alloc(40 + (size_t)(i % 3) * 8);
            CHECK(x->blocks[i] != NULL);
            memset(x->blocks[i], i & 0xFF, 40);
        }
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, freers[round], x), 0);
        CHECK_EQ(pthread_join(t, NULL), 0);
        int reused = 0;
        void **again = tern_calloc(POOL_N, sizeof *again);
        CHECK(again != NULL);
        for (int i = 0; i < POOL_N; i++) {
            again[i] = tern_pool_alloc(40 + (size_t)(i % 3) * 8);
            for (int j = 0; j < POOL_N; j++) {
                if (again[i] == x->blocks[j]) {
                    reused++;
                    break;
                }
            }
        }
        CHECK_EQ(reused, POOL_N);
        for (int i = 0; i < POOL_N; i++) {
            tern_pool_free(again[i]);
        }
        tern_free(again);
        tern_free(x);
    }
    tern_pool_thread_release();
    tern_pool_shutdown();
}

static const struct tern_test tests[] = {
    {"pool_single_thread", test_pool_single_thread},
    {"pool_cross_thread", test_pool_cross_thread},
    {"error_names", test_error_names},
    {"alloc_fail_nth", test_alloc_fail_nth},
    {"buf_cap_and_consume", test_buf_cap_and_consume},
    {"buf_tail_commit_and_oom", test_buf_tail_commit_and_oom},
    {"log_levels", test_log_levels},
    {"time_monotonic", test_time_monotonic},
    {"file_read", test_file_read},
    {"line_reader", test_line_reader},
    {NULL, NULL},
};

TERN_TEST_MAIN("common", tests)
