/* SPDX-License-Identifier: MIT */
/*
 * `tern passwd [-c] [-b] [-D] [--pbkdf2 | --scram] [-I COST] FILE USER [PASSWORD]`: add,
 * update or delete a user in a password file, like mosquitto_passwd.
 *
 * Rules kept here: the file is rewritten atomically (a temporary file in the same directory,
 * mode 0600, fsync, rename over the original, fsync of the directory), so a crash leaves either
 * the old or the new file, never a half-written one; every other line (comments, blank lines,
 * other users, even lines this version cannot parse) keeps its bytes and its place, and an
 * updated user keeps its line; the password is read twice from /dev/tty with echo off unless
 * -b gives it on the command line; the password buffers are wiped before exit.
 */
#include "passwd.h"

#include "auth/passwd.h"
#include "common/alloc.h"
#include "tern/error.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define MAX_PASSWORD 65535u

static void usage(FILE *f)
{
    fputs("Usage: tern passwd [-c | -D] [-b] [--pbkdf2 | --scram] [-I COST] FILE USER "
          "[PASSWORD]\n"
          "Add, update or delete USER in the password file FILE (mosquitto_passwd compatible).\n"
          "  -c          create FILE (replacing any existing file) holding only USER\n"
          "  -D          delete USER from FILE\n"
          "  -b          batch: take PASSWORD from the command line instead of prompting\n"
          "  --pbkdf2    write Mosquitto's $7$ PBKDF2-SHA512 hash (default: $argon2id$)\n"
          "  --scram     write a SCRAM-SHA-256 verifier (RFC 5803): the user may then also log\n"
          "              in with MQTT 5 enhanced authentication, method SCRAM-SHA-256\n"
          "  -H ALG      argon2id, sha512-pbkdf2 (mosquitto_passwd's names) or scram-sha-256\n"
          "  -I COST     argon2id time cost (default 2), PBKDF2 iterations (default 210000) or\n"
          "              SCRAM iterations (default 10000)\n"
          "Without -b the password is asked twice on the terminal, without echo.\n"
          "The file is written atomically with mode 0600; other lines keep their order.\n",
          f);
}

/* Read a whole file into *buf (NUL-terminated); *len bytes. Returns 0, or errno. */
static int read_file(const char *path, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return errno;
    }
    size_t cap = 0;
    for (;;) {
        if (cap - *len < 2) {
            if (cap >= TERN_PASSWD_MAX_FILE) {
                fclose(f);
                return EFBIG;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            char *nb = tern_realloc(*buf, ncap);
            if (nb == NULL) {
                fclose(f);
                return ENOMEM;
            }
            *buf = nb;
            cap = ncap;
        }
        size_t got = fread(*buf + *len, 1, cap - *len - 1, f);
        *len += got;
        if (got == 0) {
            break;
        }
    }
    int e = ferror(f) ? EIO : 0;
    fclose(f);
    (*buf)[*len] = '\0';
    return e;
}

/* The user name of a line as the loader sees it, or false for blank/comment/no-colon lines. */
static bool line_user(const char *line, size_t ll, const char **u, size_t *ul)
{
    while (ll > 0 && (line[0] == ' ' || line[0] == '\t')) {
        line++;
        ll--;
    }
    if (ll == 0 || line[0] == '#') {
        return false;
    }
    const char *colon = memchr(line, ':', ll);
    if (colon == NULL) {
        return false;
    }
    size_t n = (size_t)(colon - line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t')) {
        n--;
    }
    *u = line;
    *ul = n;
    return true;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/*
 * Write `old` (len bytes; may be NULL for a new file) to `path` with the line of `user`
 * replaced by `newline` (NULL: deleted), or `newline` appended when the user has no line.
 * Sets *found. Returns 0 or prints the reason and returns 1.
 */
static int rewrite(const char *path, const char *old, size_t len, const char *user,
                   const char *newline, bool *found)
{
    *found = false;
    size_t plen = strlen(path);
    char *tmp = tern_malloc(plen + 16);
    char *dircopy = tern_strdup(path);
    if (tmp == NULL || dircopy == NULL) {
        tern_free(tmp);
        tern_free(dircopy);
        fprintf(stderr, "tern passwd: out of memory\n");
        return 1;
    }
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "tern passwd: cannot create a temporary file next to %s: %s\n", path,
                strerror(errno));
        tern_free(tmp);
        tern_free(dircopy);
        return 1;
    }
    bool ok = fchmod(fd, 0600) == 0;
    size_t ulen = strlen(user);
    size_t pos = 0;
    while (ok && old != NULL && pos < len) {
        const char *line = old + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl != NULL);
        const char *u;
        size_t ul;
        if (line_user(line, ll, &u, &ul) && ul == ulen && memcmp(u, user, ulen) == 0) {
            if (!*found && newline != NULL) {
                ok = write_all(fd, newline, strlen(newline)) && write_all(fd, "\n", 1);
            }
            *found = true; /* any further line of the same user is dropped too */
            continue;
        }
        ok = write_all(fd, line, ll) && write_all(fd, "\n", 1);
    }
    if (ok && !*found && newline != NULL) {
        ok = write_all(fd, newline, strlen(newline)) && write_all(fd, "\n", 1);
    }
    ok = ok && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        fprintf(stderr, "tern passwd: cannot write %s: %s\n", path, strerror(saved));
        unlink(tmp);
        tern_free(tmp);
        tern_free(dircopy);
        return 1;
    }
    int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    tern_free(tmp);
    tern_free(dircopy);
    return 0;
}

/* Prompt on /dev/tty with echo off; reads one line into buf (NUL-terminated). */
static int ask(int tty, const char *prompt, char *buf, size_t cap, size_t *len)
{
    struct termios old, quiet;
    bool have_term = tcgetattr(tty, &old) == 0;
    /* Echo goes off (dropping type-ahead) before the prompt shows, so an answer typed as soon
     * as the prompt appears is never flushed or echoed. */
    if (have_term) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        (void)tcsetattr(tty, TCSAFLUSH, &quiet);
    }
    if (!write_all(tty, prompt, strlen(prompt))) {
        if (have_term) {
            (void)tcsetattr(tty, TCSANOW, &old);
        }
        return -1;
    }
    size_t n = 0;
    int rc = 0;
    for (;;) {
        char c;
        ssize_t r = read(tty, &c, 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            rc = n == 0 ? -1 : 0;
            break;
        }
        if (c == '\n') {
            break;
        }
        if (n + 1 >= cap) {
            rc = -2;
            continue; /* keep reading to the end of the line, then fail */
        }
        buf[n++] = c;
    }
    if (have_term) {
        (void)tcsetattr(tty, TCSANOW, &old);
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    buf[n] = '\0';
    *len = n;
    return rc;
}

static int prompt_password(char *pw, size_t cap, size_t *len)
{
    int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (tty < 0) {
        fprintf(stderr, "tern passwd: no terminal to ask the password on (use -b): %s\n",
                strerror(errno));
        return 1;
    }
    char *again = tern_malloc(cap);
    if (again == NULL) {
        close(tty);
        fprintf(stderr, "tern passwd: out of memory\n");
        return 1;
    }
    size_t alen = 0;
    int rc = 1;
    int r1 = ask(tty, "Password: ", pw, cap, len);
    int r2 = r1 == 0 ? ask(tty, "Reenter password: ", again, cap, &alen) : r1;
    if (r1 == -2 || r2 == -2) {
        fprintf(stderr, "tern passwd: password longer than %u bytes\n", MAX_PASSWORD);
    } else if (r1 != 0 || r2 != 0) {
        fprintf(stderr, "tern passwd: no password read\n");
    } else if (*len != alen || CRYPTO_memcmp(pw, again, alen) != 0) {
        fprintf(stderr, "tern passwd: passwords do not match\n");
    } else {
        rc = 0;
    }
    OPENSSL_cleanse(again, cap);
    tern_free(again);
    close(tty);
    return rc;
}

static bool parse_cost(const char *s, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0 || v > 100000000ul) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

int cli_passwd(int argc, char **argv)
{
    bool create = false, batch = false, del = false;
    enum tern_passwd_alg alg = TERN_PASSWD_ARGON2ID;
    uint32_t cost = 0;
    const char *pos[3];
    int npos = 0;
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (npos == 3) {
                fprintf(stderr, "tern passwd: too many arguments\n");
                usage(stderr);
                return 1;
            }
            pos[npos++] = a;
        } else if (strcmp(a, "--") == 0) {
            only_pos = true;
        } else if (strcmp(a, "-c") == 0) {
            create = true;
        } else if (strcmp(a, "-b") == 0) {
            batch = true;
        } else if (strcmp(a, "-D") == 0) {
            del = true;
        } else if (strcmp(a, "--pbkdf2") == 0) {
            alg = TERN_PASSWD_PBKDF2_SHA512;
        } else if (strcmp(a, "--scram") == 0) {
            alg = TERN_PASSWD_SCRAM_SHA256;
        } else if (strcmp(a, "-H") == 0 && i + 1 < argc) {
            const char *h = argv[++i];
            if (strcmp(h, "argon2id") == 0) {
                alg = TERN_PASSWD_ARGON2ID;
            } else if (strcmp(h, "sha512-pbkdf2") == 0) {
                alg = TERN_PASSWD_PBKDF2_SHA512;
            } else if (strcmp(h, "scram-sha-256") == 0) {
                alg = TERN_PASSWD_SCRAM_SHA256;
            } else {
                fprintf(
                    stderr,
                    "tern passwd: unknown hash \"%s\" (argon2id, sha512-pbkdf2 or scram-sha-256; "
                    "sha512 is read but never written)\n",
                    h);
                return 1;
            }
        } else if (strcmp(a, "-I") == 0 && i + 1 < argc) {
            if (!parse_cost(argv[++i], &cost)) {
                fprintf(stderr, "tern passwd: bad cost \"%s\"\n", argv[i]);
                return 1;
            }
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "tern passwd: unknown option \"%s\"\n", a);
            usage(stderr);
            return 1;
        }
    }
    if (create && del) {
        fprintf(stderr, "tern passwd: -c and -D cannot be used together\n");
        return 1;
    }
    int want = del ? 2 : batch ? 3 : 2;
    if (npos != want) {
        fprintf(stderr, "tern passwd: expected FILE USER%s\n", batch && !del ? " PASSWORD" : "");
        usage(stderr);
        return 1;
    }
    const char *path = pos[0];
    const char *user = pos[1];
    if (!tern_passwd_username_valid(user)) {
        fprintf(stderr,
                "tern passwd: invalid user name \"%s\" (no ':', no control "
                "characters, no leading '#' or blanks)\n",
                user);
        return 1;
    }

    char *old = NULL;
    size_t oldlen = 0;
    if (!create) {
        int e = read_file(path, &old, &oldlen);
        if (e != 0) {
            fprintf(stderr, "tern passwd: cannot read %s: %s%s\n", path, strerror(e),
                    e == ENOENT ? " (use -c to create it)" : "");
            tern_free(old);
            return 1;
        }
        struct tern_passwd *check = NULL;
        char err[512];
        if (tern_passwd_load_string(&check, old, oldlen, path, err, sizeof err) != TERN_OK) {
            fprintf(stderr, "tern passwd: warning: %s (line kept as is)\n", err);
        }
        tern_passwd_free(check);
    }

    int rc = 1;
    char *pw = NULL;
    char line[TERN_PASSWD_HASH_MAX + 65536];
    bool found = false;
    if (del) {
        rc = rewrite(path, old, oldlen, user, NULL, &found);
        if (rc == 0 && !found) {
            fprintf(stderr, "tern passwd: user \"%s\" not in %s\n", user, path);
            rc = 1;
        }
        goto done;
    }
    pw = tern_malloc(MAX_PASSWORD + 2);
    if (pw == NULL) {
        fprintf(stderr, "tern passwd: out of memory\n");
        goto done;
    }
    size_t pwlen = 0;
    if (batch) {
        pwlen = strlen(pos[2]);
        if (pwlen > MAX_PASSWORD) {
            fprintf(stderr, "tern passwd: password longer than %u bytes\n", MAX_PASSWORD);
            goto done;
        }
        memcpy(pw, pos[2], pwlen + 1);
    } else if (prompt_password(pw, MAX_PASSWORD + 2, &pwlen) != 0) {
        goto done;
    }
    if (pwlen == 0) {
        fprintf(stderr, "tern passwd: empty password\n");
        goto done;
    }
    char hash[TERN_PASSWD_HASH_MAX];
    int hrc = tern_passwd_hash(alg, cost, pw, pwlen, hash, sizeof hash);
    if (hrc != TERN_OK) {
        fprintf(stderr, "tern passwd: hashing failed: %s\n", tern_strerror(hrc));
        goto done;
    }
    snprintf(line, sizeof line, "%s:%s", user, hash);
    rc = rewrite(path, old, oldlen, user, line, &found);
done:
    if (pw != NULL) {
        OPENSSL_cleanse(pw, MAX_PASSWORD + 2);
        tern_free(pw);
    }
    tern_free(old);
    return rc;
}
