/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/auth/passwd.c: every hash format verifies the right password and
 * refuses wrong ones, using vectors made by other implementations (Debian's mosquitto_passwd for
 * `$7$`, Python's hashlib for `$6$`/`$7$`, libargon2's own encoder for `$argon2id$`); a file
 * written by mosquitto_passwd at test time loads and verifies; hashes written here round-trip
 * and have the documented layout; malformed lines fail with `file:line`; allocation failures
 * during load are reported, never crash.
 */
#include "auth/passwd.h"

#include "common/alloc.h"
#include "test.h"

#include <argon2.h>
#include <pthread.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Made by Debian's mosquitto_passwd 2.0.11: `mosquitto_passwd -c -b f alice 's3cret pw'`. */
static const char mosq_alice[] =
    "$7$101$3asf1cSh8AdPDu/7$jZ4dcfkgEWUENDQGcADfE+9yEl35ai9qK9BYA9adej4"
    "wUctFLarjlNqvqo8nr5UMNJOxzGbPL3HwhADYNXSJPQ==";
/* Python: hashlib.sha512(b"correct horse" + bytes(range(1, 13))), base64. */
static const char py_sha512[] = "$6$AQIDBAUGBwgJCgsM$k4h6DJTPKKgPqwiLW87w0j5t6eo2nkDOCc72xNQ6goxbM"
                                "rAMEDvsnYteF9SSd1cyXtc8SuF5I0GVPt7YRi6Wdw==";
/* Python: hashlib.pbkdf2_hmac("sha512", b"pbkdf2 pw", b"saltsaltsalt", 1000). */
static const char py_pbkdf2[] = "$7$1000$c2FsdHNhbHRzYWx0$LXnS5v13/EGIkemQo7rEmyLvkNoGD+2mrPTNw5dIE"
                                "gXkaM1QDOpp3jb3CtyeM41r/89B1yd/LYSYHAhJkASgwg==";

static int check(const char *hash, const char *pw)
{
    return tern_passwd_check_hash(hash, strlen(hash), pw, strlen(pw));
}

static void test_sha512_vector(void)
{
    CHECK_ERR(check(py_sha512, "correct horse"), TERN_OK);
    CHECK_ERR(check(py_sha512, "correct horsE"), TERN_EDENIED);
    CHECK_ERR(check(py_sha512, "correct hors"), TERN_EDENIED);
    CHECK_ERR(check(py_sha512, ""), TERN_EDENIED);
}

static void test_pbkdf2_vectors(void)
{
    CHECK_ERR(check(py_pbkdf2, "pbkdf2 pw"), TERN_OK);
    CHECK_ERR(check(py_pbkdf2, "pbkdf2 pW"), TERN_EDENIED);
    CHECK_ERR(check(mosq_alice, "s3cret pw"), TERN_OK);
    CHECK_ERR(check(mosq_alice, "s3cret"), TERN_EDENIED);
    CHECK_ERR(check(mosq_alice, "s3cret pw "), TERN_EDENIED);
}

static void test_argon2id_vector(void)
{
    /* libargon2's own encoder writes the PHC string; our decoder must read it. */
    const uint8_t salt[16] = "0123456789abcdef";
    char enc[256];
    CHECK_EQ(
        argon2id_hash_encoded(2, 1024, 1, "argon pw", 8, salt, sizeof salt, 32, enc, sizeof enc),
        ARGON2_OK);
    CHECK(strncmp(enc, "$argon2id$v=19$m=1024,t=2,p=1$", 30) == 0);
    CHECK_ERR(check(enc, "argon pw"), TERN_OK);
    CHECK_ERR(check(enc, "argon pX"), TERN_EDENIED);
    /* Two lanes. */
    CHECK_EQ(argon2id_hash_encoded(1, 64, 2, "x", 1, salt, 8, 16, enc, sizeof enc), ARGON2_OK);
    CHECK_ERR(check(enc, "x"), TERN_OK);
    CHECK_ERR(check(enc, "y"), TERN_EDENIED);
}

static void test_binary_password(void)
{
    /* MQTT passwords are binary: a NUL inside must count. */
    char out[TERN_PASSWD_HASH_MAX];
    const char pw[] = {'a', '\0', 'b'};
    CHECK_ERR(tern_passwd_hash(TERN_PASSWD_PBKDF2_SHA512, 10, pw, sizeof pw, out, sizeof out),
              TERN_OK);
    CHECK_ERR(tern_passwd_check_hash(out, strlen(out), pw, sizeof pw), TERN_OK);
    CHECK_ERR(tern_passwd_check_hash(out, strlen(out), pw, 1), TERN_EDENIED);
    CHECK_ERR(tern_passwd_check_hash(out, strlen(out), "a\0c", 3), TERN_EDENIED);
}

static void test_hash_roundtrip(void)
{
    char out[TERN_PASSWD_HASH_MAX];
    CHECK_ERR(tern_passwd_hash(TERN_PASSWD_ARGON2ID, 0, "pw1", 3, out, sizeof out), TERN_OK);
    CHECK(strncmp(out, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    CHECK(strchr(out, '=') == strstr(out, "v=19") + 1); /* no base64 padding after params */
    CHECK_ERR(check(out, "pw1"), TERN_OK);
    CHECK_ERR(check(out, "pw2"), TERN_EDENIED);
    /* argon2's own verifier agrees with the string we wrote. */
    CHECK_EQ(argon2id_verify(out, "pw1", 3), ARGON2_OK);
    CHECK(argon2id_verify(out, "pw2", 3) != ARGON2_OK);

    char out2[TERN_PASSWD_HASH_MAX];
    CHECK_ERR(tern_passwd_hash(TERN_PASSWD_ARGON2ID, 0, "pw1", 3, out2, sizeof out2), TERN_OK);
    CHECK(strcmp(out, out2) != 0); /* fresh salt each time */

    CHECK_ERR(tern_passwd_hash(TERN_PASSWD_PBKDF2_SHA512, 0, "pw1", 3, out, sizeof out), TERN_OK);
    CHECK(strncmp(out, "$7$210000$", 10) == 0);
    /* Mosquitto layout: 12-byte salt (16 base64 chars), 64-byte hash (88 chars, padded). */
    CHECK_EQ(strlen(out), 10 + 16 + 1 + 88);
    CHECK_ERR(check(out, "pw1"), TERN_OK);
    CHECK_ERR(check(out, "pw"), TERN_EDENIED);

    CHECK_ERR(tern_passwd_hash(TERN_PASSWD_SHA512, 0, "pw1", 3, out, sizeof out),
              TERN_EUNSUPPORTED);
    CHECK_ERR(tern_passwd_hash(TERN_PASSWD_PBKDF2_SHA512, 5, "pw1", 3, out, 20), TERN_ENOSPC);
    CHECK_EQ(out[0], '\0');
}

static void test_malformed_hashes(void)
{
    static const char *bad[] = {
        "",
        "plain",
        "$5$abc$def",
        "$6$AQIDBAUGBwgJCgsM",
        "$6$AQIDBAUGBwgJCgsM$abcd", /* digest not 64 bytes */
        "$6$AQIDBAUGBwgJCgs$k4h6DJTPKKgPqwiLW87w0j5t6eo2nkDOCc72xNQ6goxbMrAMEDvsnYteF9SSd1cyXt"
        "c8SuF5I0GVPt7YRi6Wdw==", /* salt length not a multiple of 4 */
        "$7$0$c2FsdHNhbHRzYWx0$LXnS5v13/EGIkemQo7rEmyLvkNoGD+2mrPTNw5dIEgXkaM1QDOpp3jb3CtyeM41r/"
        "89B1yd/LYSYHAhJkASgwg==", /* zero iterations */
        "$7$01000$c2FsdHNhbHRzYWx0$LXnS5v13/EGIkemQo7rEmyLvkNoGD+2mrPTNw5dIEgXkaM1QDOpp3jb3CtyeM41"
        "r/89B1yd/LYSYHAhJkASgwg==", /* leading zero */
        "$7$1000$c2FsdHNh*HRzYWx0$LXnS5v13/EGIkemQo7rEmyLvkNoGD+2mrPTNw5dIEgXkaM1QDOpp3jb3CtyeM41"
        "r/89B1yd/LYSYHAhJkASgwg==", /* bad base64 char */
        "$argon2id$v=16$m=1024,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$abcdefghijk",
        "$argon2id$v=19$m=1024,t=2$MDEyMzQ1Njc4OWFiY2RlZg$abcdefghijk",
        "$argon2id$v=19$m=99999999,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$abcdefghijk",
        "$argon2id$v=19$m=1024,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg==$abcdefghijk", /* padded */
        "$argon2i$v=19$m=1024,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$abcdefghijk",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = check(bad[i], "x");
        if (rc != TERN_EINVAL) {
            fprintf(stderr, "  bad[%zu] %s: got %s\n", i, bad[i], tern_errname(rc));
        }
        CHECK_ERR(rc, TERN_EINVAL);
    }
}

static void test_load_and_verify(void)
{
    char text[1024];
    snprintf(text, sizeof text,
             "# users\n"
             "\n"
             "alice:%s\r\n"
             "  carol : %s  \n"
             "dave:%s",
             mosq_alice, py_sha512, py_pbkdf2);
    struct tern_passwd *pw = NULL;
    char err[256] = "";
    CHECK_ERR(tern_passwd_load_string(&pw, text, strlen(text), "pw", err, sizeof err), TERN_OK);
    if (pw == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_EQ(tern_passwd_count(pw), 3);
    CHECK(tern_passwd_has_user(pw, "carol"));
    CHECK(!tern_passwd_has_user(pw, "bob"));
    CHECK_ERR(tern_passwd_verify(pw, "alice", "s3cret pw", 9), TERN_OK);
    CHECK_ERR(tern_passwd_verify(pw, "alice", "correct horse", 13), TERN_EDENIED);
    CHECK_ERR(tern_passwd_verify(pw, "carol", "correct horse", 13), TERN_OK);
    CHECK_ERR(tern_passwd_verify(pw, "dave", "pbkdf2 pw", 9), TERN_OK);
    CHECK_ERR(tern_passwd_verify(pw, "dave", "s3cret pw", 9), TERN_EDENIED);
    CHECK_ERR(tern_passwd_verify(pw, "bob", "s3cret pw", 9), TERN_ENOTFOUND);
    CHECK_ERR(tern_passwd_verify(pw, "Alice", "s3cret pw", 9), TERN_ENOTFOUND);
    CHECK_ERR(tern_passwd_verify(pw, "alice", NULL, 0), TERN_EDENIED);
    tern_passwd_free(pw);
    tern_passwd_free(NULL);
}

static void test_load_errors(void)
{
    static const struct {
        const char *text;
        const char *want; /* prefix of the message */
    } cases[] = {
        {"alice\n", "f:1: expected username:hash"},
        {"# c\n\nalice:\n", "f:3: empty password hash"},
        {":$6$AQIDBAUGBwgJCgsM$x\n", "f:1: empty username"},
        {"a:$6$AQIDBAUGBwgJCgsM$k4h6\n", "f:1: $6$ hash is not 64 bytes"},
        {"a:plaintext\n", "f:1: hash does not start with"},
        {"a:$1$abc$def\n", "f:1: unsupported hash"},
        {"a:$argon2id$v=19$m=4,t=1,p=1$MDEyMzQ1Njc$MDEyMzQ1Njc\n", "f:1: argon2id parameter"},
        {"x\x01y:$6$a$b\n", "f:1: control character in username"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tern_passwd *pw = (struct tern_passwd *)1;
        char err[256] = "";
        int rc = tern_passwd_load_string(&pw, cases[i].text, strlen(cases[i].text), "f", err,
                                         sizeof err);
        CHECK_ERR(rc, TERN_ECONFIG);
        CHECK(pw == NULL);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0) {
            fprintf(stderr, "  case %zu: got \"%s\", want \"%s...\"\n", i, err, cases[i].want);
            tern_test_failed_checks++;
        }
    }
    /* Duplicate user: names the second line and the first. */
    char text[1024];
    snprintf(text, sizeof text, "bob:%s\n#\nbob:%s\n", py_sha512, py_pbkdf2);
    struct tern_passwd *pw = NULL;
    char err[256] = "";
    CHECK_ERR(tern_passwd_load_string(&pw, text, strlen(text), "f", err, sizeof err), TERN_ECONFIG);
    CHECK(strcmp(err, "f:3: user \"bob\" already defined on line 1") == 0);
    /* NUL inside a line. */
    CHECK_ERR(tern_passwd_load_string(&pw, "a:\0b\n", 5, "f", err, sizeof err), TERN_ECONFIG);
    CHECK(strcmp(err, "f:1: NUL byte in line") == 0);
    /* Missing file. */
    CHECK_ERR(tern_passwd_load_file(&pw, "/nonexistent/pwfile", err, sizeof err), TERN_ECONFIG);
    CHECK(strncmp(err, "/nonexistent/pwfile: ", 21) == 0);
}

static void test_alloc_failures(void)
{
    char text[1024];
    snprintf(text, sizeof text, "a:%s\nb:%s\nc:%s\n", py_sha512, py_pbkdf2, mosq_alice);
    int ok = 0;
    for (uint64_t n = 1; n < 64; n++) {
        struct tern_passwd *pw = NULL;
        tern_alloc_fail_after(n);
        int rc = tern_passwd_load_string(&pw, text, strlen(text), "f", NULL, 0);
        tern_alloc_fail_after(0);
        CHECK(rc == TERN_OK || rc == TERN_ENOMEM);
        CHECK((rc == TERN_OK) == (pw != NULL));
        if (rc == TERN_OK) {
            ok++;
            CHECK_EQ(tern_passwd_count(pw), 3);
        }
        tern_passwd_free(pw);
    }
    CHECK(ok > 0);
}

/* A file written by Debian's mosquitto_passwd right now (skipped when it is not installed). */
static void test_mosquitto_passwd_file(void)
{
    const char *tool = "/usr/bin/mosquitto_passwd";
    if (access(tool, X_OK) != 0) {
        fprintf(stderr, "  (mosquitto_passwd not installed: skipped)\n");
        return;
    }
    char dir[] = "/tmp/tern_passwd_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128], cmd[512];
    snprintf(path, sizeof path, "%s/pw", dir);
    snprintf(cmd, sizeof cmd,
             "%s -c -b %s user1 'p@ss word' && %s -b %s user2 second >/dev/null 2>&1", tool, path,
             tool, path);
    CHECK_EQ(system(cmd), 0);
    struct tern_passwd *pw = NULL;
    char err[256] = "";
    CHECK_ERR(tern_passwd_load_file(&pw, path, err, sizeof err), TERN_OK);
    if (pw != NULL) {
        CHECK_EQ(tern_passwd_count(pw), 2);
        CHECK_ERR(tern_passwd_verify(pw, "user1", "p@ss word", 9), TERN_OK);
        CHECK_ERR(tern_passwd_verify(pw, "user1", "p@ss wore", 9), TERN_EDENIED);
        CHECK_ERR(tern_passwd_verify(pw, "user2", "second", 6), TERN_OK);
        CHECK_ERR(tern_passwd_verify(pw, "user2", "p@ss word", 9), TERN_EDENIED);
        CHECK_ERR(tern_passwd_verify(pw, "user3", "second", 6), TERN_ENOTFOUND);
    } else {
        fprintf(stderr, "  %s\n", err);
    }
    tern_passwd_free(pw);
    unlink(path);
    rmdir(dir);
}

/* Several threads verify against one table at once (the broker's worker pool does this). */
struct verify_job {
    const struct tern_passwd *pw;
    int ok, denied, other;
};

static void *verify_thread(void *arg)
{
    struct verify_job *j = arg;
    for (int i = 0; i < 20; i++) {
        const char *user = (i % 2) ? "carol" : "dave";
        const char *good = (i % 2) ? "correct horse" : "pbkdf2 pw";
        int rc = tern_passwd_verify(j->pw, user, good, strlen(good));
        j->ok += rc == TERN_OK;
        j->other += rc != TERN_OK;
        rc = tern_passwd_verify(j->pw, user, "wrong", 5);
        j->denied += rc == TERN_EDENIED;
        j->other += rc != TERN_EDENIED;
    }
    return NULL;
}

static void test_threads(void)
{
    char text[1024];
    snprintf(text, sizeof text, "carol:%s\ndave:%s\n", py_sha512, py_pbkdf2);
    struct tern_passwd *pw = NULL;
    CHECK_ERR(tern_passwd_load_string(&pw, text, strlen(text), "pw", NULL, 0), TERN_OK);
    if (pw == NULL) {
        return;
    }
    pthread_t th[4];
    struct verify_job jobs[4];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 4; i++) {
        jobs[i].pw = pw;
        CHECK_EQ(pthread_create(&th[i], NULL, verify_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(jobs[i].ok, 20);
        CHECK_EQ(jobs[i].denied, 20);
        CHECK_EQ(jobs[i].other, 0);
    }
    tern_passwd_free(pw);
}

static void test_username_valid(void)
{
    CHECK(tern_passwd_username_valid("alice"));
    CHECK(tern_passwd_username_valid("a b"));
    CHECK(!tern_passwd_username_valid(""));
    CHECK(!tern_passwd_username_valid("a:b"));
    CHECK(!tern_passwd_username_valid(" a"));
    CHECK(!tern_passwd_username_valid("a\t"));
    CHECK(!tern_passwd_username_valid("#a"));
    CHECK(!tern_passwd_username_valid("a\nb"));
    CHECK(!tern_passwd_username_valid(NULL));
}

static const struct tern_test tests[] = {
    {"sha512_vector", test_sha512_vector},
    {"pbkdf2_vectors", test_pbkdf2_vectors},
    {"argon2id_vector", test_argon2id_vector},
    {"binary_password", test_binary_password},
    {"hash_roundtrip", test_hash_roundtrip},
    {"malformed_hashes", test_malformed_hashes},
    {"load_and_verify", test_load_and_verify},
    {"load_errors", test_load_errors},
    {"alloc_failures", test_alloc_failures},
    {"mosquitto_passwd_file", test_mosquitto_passwd_file},
    {"threads", test_threads},
    {"username_valid", test_username_valid},
    {NULL, NULL},
};

TERN_TEST_MAIN("passwd", tests)
