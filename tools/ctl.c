/* SPDX-License-Identifier: MIT */
/*
 * `tern ctl`: administer a running broker the way mosquitto_ctrl does. Today one module,
 * `dynsec`: each subcommand (same names and argument order as `mosquitto_ctrl dynsec`) becomes
 * one JSON command published to $CONTROL/dynamic-security/v1; the answer is read from
 * .../response, matched by a random correlationData (other admins may share that topic),
 * printed, and a command error gives exit code 1. `dynsec init` writes a new state file
 * locally and needs no broker.
 *
 * libtern runs on its own thread here and the blocking helpers are used (connect, subscribe,
 * publish with wait, receive with a timeout), as in `tern rr`. Passwords not given on the
 * command line are read from the terminal with echo off.
 */
#include "ctl.h"

#include "common/alloc.h"
#include "common/time.h"
#include "dynsec/dynsec.h"
#include "tern/client.h"
#include "tern/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define CTL_TIMEOUT_MS 10000
#define MAX_PASSWORD   1024

struct ctl {
    const char *host;
    int port;
    const char *username;
    const char *password;
    const char *id;
    int version;
    int timeout_s;
    bool debug;
};

static void usage(FILE *f)
{
    fputs("Usage: tern ctl [-h host] [-p port] [-u username] [-P password] [-i id] [-V 5|311]\n"
          "                [-W seconds] [-d] dynsec COMMAND [args]\n"
          "Administer a broker's dynamic security (like mosquitto_ctrl): each command is sent\n"
          "as JSON to $CONTROL/dynamic-security/v1 and the answer printed. Exit code 1 when the\n"
          "broker answers with an error.\n"
          "\n"
          "Initialisation (local file, no broker):\n"
          "  dynsec init FILE ADMIN_USER [ADMIN_PASSWORD]\n"
          "General:\n"
          "  dynsec getDefaultACLAccess\n"
          "  dynsec setDefaultACLAccess ACLTYPE allow|deny\n"
          "        ACLTYPE: publishClientSend|publishClientReceive|subscribe|unsubscribe\n"
          "  dynsec getAnonymousGroup\n"
          "  dynsec setAnonymousGroup GROUP\n"
          "Clients:\n"
          "  dynsec createClient USER [-c CLIENTID] [-p PASSWORD]\n"
          "  dynsec deleteClient USER\n"
          "  dynsec setClientPassword USER [PASSWORD]\n"
          "  dynsec setClientId USER [CLIENTID]\n"
          "  dynsec addClientRole USER ROLE [PRIORITY]\n"
          "  dynsec removeClientRole USER ROLE\n"
          "  dynsec getClient USER\n"
          "  dynsec listClients [COUNT [OFFSET]]\n"
          "  dynsec enableClient USER\n"
          "  dynsec disableClient USER\n"
          "Groups:\n"
          "  dynsec createGroup GROUP\n"
          "  dynsec deleteGroup GROUP\n"
          "  dynsec addGroupRole GROUP ROLE [PRIORITY]\n"
          "  dynsec removeGroupRole GROUP ROLE\n"
          "  dynsec addGroupClient GROUP USER [PRIORITY]\n"
          "  dynsec removeGroupClient GROUP USER\n"
          "  dynsec getGroup GROUP\n"
          "  dynsec listGroups [COUNT [OFFSET]]\n"
          "Roles:\n"
          "  dynsec createRole ROLE\n"
          "  dynsec deleteRole ROLE\n"
          "  dynsec addRoleACL ROLE ACLTYPE TOPIC allow|deny [PRIORITY]\n"
          "  dynsec removeRoleACL ROLE ACLTYPE TOPIC\n"
          "        ACLTYPE: publishClientSend|publishClientReceive|subscribeLiteral|\n"
          "                 subscribePattern|unsubscribeLiteral|unsubscribePattern\n"
          "  dynsec getRole ROLE\n"
          "  dynsec listRoles [COUNT [OFFSET]]\n"
          "Any command (modifyClient, modifyGroup, modifyRole, ...):\n"
          "  dynsec json '{\"command\":\"modifyClient\",\"username\":\"u\",...}'\n"
          "Higher priority (larger number) roles, groups and ACLs are evaluated first.\n"
          "\n"
          "Options:\n"
          "  -h HOST      broker host (default localhost)\n"
          "  -p PORT      broker port (default 1883)\n"
          "  -u USER      username of an admin client\n"
          "  -P PASSWORD  its password\n"
          "  -i ID        client id (default: assigned by the broker)\n"
          "  -V VERSION   MQTT version: 5 (default), 311\n"
          "  -W SECONDS   wait at most this long for the answer (default 10)\n"
          "  -d           print connection diagnostics\n"
          "  --help       this help\n",
          f);
}

/* Read a password from the terminal with echo off. 0 ok, -1 error (message printed). */
static int read_password(const char *prompt, char *buf, size_t cap)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (tty == NULL) {
        fprintf(stderr, "tern ctl: no terminal to read the password from; give it as an "
                        "argument\n");
        return -1;
    }
    int fd = fileno(tty);
    struct termios old, quiet;
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    fputs(prompt, tty);
    fflush(tty);
    char *got = fgets(buf, (int)cap, tty);
    if (restore) {
        tcsetattr(fd, TCSAFLUSH, &old);
    }
    fputs("\n", tty);
    fclose(tty);
    if (got == NULL) {
        return -1;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Ask twice; 0 when both answers agree and are non-empty. */
static int ask_new_password(char *buf, size_t cap)
{
    char again[MAX_PASSWORD];
    if (read_password("Password: ", buf, cap) != 0 ||
        read_password("Reenter password: ", again, sizeof again) != 0) {
        return -1;
    }
    int rc = strcmp(buf, again) == 0 && buf[0] != '\0' ? 0 : -1;
    memset(again, 0, sizeof again);
    if (rc != 0) {
        fprintf(stderr, "tern ctl: passwords do not match or are empty\n");
    }
    return rc;
}

static bool parse_int(const char *s, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < -2147483647L || v > 2147483647L) {
        return false;
    }
    *out = (int)v;
    return true;
}

static bool add_s(cJSON *o, const char *k, const char *v)
{
    return cJSON_AddStringToObject(o, k, v) != NULL;
}

static bool add_i(cJSON *o, const char *k, const char *v)
{
    int n = 0;
    if (!parse_int(v, &n)) {
        fprintf(stderr, "tern ctl: \"%s\" is not a number\n", v);
        return false;
    }
    return cJSON_AddNumberToObject(o, k, n) != NULL;
}

static bool allow_word(const char *w, bool *allow)
{
    if (strcmp(w, "allow") == 0) {
        *allow = true;
        return true;
    }
    if (strcmp(w, "deny") == 0) {
        *allow = false;
        return true;
    }
    fprintf(stderr, "tern ctl: want allow or deny, not \"%s\"\n", w);
    return false;
}

/*
 * Subcommands taking only names: how many required (after the command), and the JSON keys
 * of the required and optional arguments (an optional key starting with '#' is a number).
 */
static const struct simple {
    const char *name;
    int required;
    const char *keys[3];
} simple_cmds[] = {
    {"getDefaultACLAccess", 0, {NULL}},
    {"getAnonymousGroup", 0, {NULL}},
    {"setAnonymousGroup", 1, {"groupname"}},
    {"deleteClient", 1, {"username"}},
    {"setClientId", 1, {"username", "clientid"}},
    {"addClientRole", 2, {"username", "rolename", "#priority"}},
    {"removeClientRole", 2, {"username", "rolename"}},
    {"getClient", 1, {"username"}},
    {"enableClient", 1, {"username"}},
    {"disableClient", 1, {"username"}},
    {"createGroup", 1, {"groupname"}},
    {"deleteGroup", 1, {"groupname"}},
    {"addGroupRole", 2, {"groupname", "rolename", "#priority"}},
    {"removeGroupRole", 2, {"groupname", "rolename"}},
    {"addGroupClient", 2, {"groupname", "username", "#priority"}},
    {"removeGroupClient", 2, {"groupname", "username"}},
    {"getGroup", 1, {"groupname"}},
    {"createRole", 1, {"rolename"}},
    {"deleteRole", 1, {"rolename"}},
    {"getRole", 1, {"rolename"}},
    {"listClients", 0, {"#count", "#offset"}},
    {"listGroups", 0, {"#count", "#offset"}},
    {"listRoles", 0, {"#count", "#offset"}},
};

static int nkeys(const struct simple *s)
{
    int n = 0;
    while (n < 3 && s->keys[n] != NULL) {
        n++;
    }
    return n;
}

/* Build the command object for argv (argv[0] is the command). NULL after printing why. */
static cJSON *build_command(int argc, char **argv, char *pwbuf, size_t pwcap)
{
    const char *name = argv[0];
    cJSON *c = cJSON_CreateObject();
    if (c == NULL) {
        return NULL;
    }
    bool ok = true;
    int nargs = argc - 1;
    char **a = argv + 1;
    for (size_t i = 0; i < sizeof simple_cmds / sizeof simple_cmds[0]; i++) {
        const struct simple *s = &simple_cmds[i];
        if (strcmp(s->name, name) != 0) {
            continue;
        }
        if (nargs < s->required || nargs > nkeys(s)) {
            fprintf(stderr, "tern ctl: wrong number of arguments for %s (see tern ctl --help)\n",
                    name);
            cJSON_Delete(c);
            return NULL;
        }
        ok = add_s(c, "command", name);
        for (int k = 0; ok && k < nargs; k++) {
            const char *key = s->keys[k];
            ok = key[0] == '#' ? add_i(c, key + 1, a[k]) : add_s(c, key, a[k]);
        }
        if (ok && strncmp(name, "list", 4) == 0) {
            ok = cJSON_AddTrueToObject(c, "verbose") != NULL;
        }
        if (!ok) {
            cJSON_Delete(c);
            return NULL;
        }
        return c;
    }
    bool allow = false;
    if (strcmp(name, "setDefaultACLAccess") == 0 && nargs == 2 && allow_word(a[1], &allow)) {
        cJSON *arr = NULL, *e = NULL;
        ok = add_s(c, "command", name) && (arr = cJSON_AddArrayToObject(c, "acls")) != NULL &&
             (e = cJSON_CreateObject()) != NULL;
        if (e != NULL) {
            cJSON_AddItemToArray(arr, e);
            ok = ok && add_s(e, "acltype", a[0]) && cJSON_AddBoolToObject(e, "allow", allow);
        }
    } else if (strcmp(name, "createClient") == 0 && nargs >= 1) {
        ok = add_s(c, "command", name) && add_s(c, "username", a[0]);
        const char *pw = NULL;
        for (int k = 1; ok && k < nargs; k++) {
            if (strcmp(a[k], "-c") == 0 && k + 1 < nargs) {
                ok = add_s(c, "clientid", a[++k]);
            } else if (strcmp(a[k], "-p") == 0 && k + 1 < nargs) {
                pw = a[++k];
            } else {
                fprintf(stderr, "tern ctl: createClient USER [-c CLIENTID] [-p PASSWORD]\n");
                ok = false;
            }
        }
        if (ok && pw == NULL && isatty(STDIN_FILENO)) {
            ok = ask_new_password(pwbuf, pwcap) == 0;
            pw = pwbuf;
        }
        if (ok && pw != NULL) {
            ok = add_s(c, "password", pw);
        }
    } else if (strcmp(name, "setClientPassword") == 0 && (nargs == 1 || nargs == 2)) {
        const char *pw = nargs == 2 ? a[1] : NULL;
        ok = add_s(c, "command", name) && add_s(c, "username", a[0]);
        if (ok && pw == NULL) {
            ok = ask_new_password(pwbuf, pwcap) == 0;
            pw = pwbuf;
        }
        ok = ok && add_s(c, "password", pw);
    } else if (strcmp(name, "addRoleACL") == 0 && (nargs == 4 || nargs == 5) &&
               allow_word(a[3], &allow)) {
        ok = add_s(c, "command", name) && add_s(c, "rolename", a[0]) && add_s(c, "acltype", a[1]) &&
             add_s(c, "topic", a[2]) && cJSON_AddBoolToObject(c, "allow", allow) != NULL &&
             (nargs < 5 || add_i(c, "priority", a[4]));
    } else if (strcmp(name, "removeRoleACL") == 0 && nargs == 3) {
        ok = add_s(c, "command", name) && add_s(c, "rolename", a[0]) && add_s(c, "acltype", a[1]) &&
             add_s(c, "topic", a[2]);
    } else if (strcmp(name, "json") == 0 && nargs == 1) {
        cJSON_Delete(c);
        c = cJSON_Parse(a[0]);
        if (!cJSON_IsObject(c)) {
            fprintf(stderr, "tern ctl: json needs one JSON object (a command)\n");
            ok = false;
        }
    } else {
        fprintf(stderr,
                "tern ctl: unknown dynsec command or wrong arguments: %s (see tern ctl "
                "--help)\n",
                name);
        ok = false;
    }
    if (!ok) {
        cJSON_Delete(c);
        return NULL;
    }
    return c;
}

static void on_log(struct tern_client *c, int level, const char *msg, void *userdata)
{
    (void)c;
    (void)level;
    (void)userdata;
    fprintf(stderr, "tern ctl: %s\n", msg);
}

/* Print the answer: data pretty-printed, or the error. Returns the exit code. */
static int print_answer(const cJSON *r)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(r, "error");
    if (cJSON_IsString(err)) {
        fprintf(stderr, "Error: %s\n", err->valuestring);
        return 1;
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(r, "data");
    if (data != NULL) {
        char *s = cJSON_Print(data);
        if (s != NULL) {
            puts(s);
            tern_free(s);
        }
    } else {
        puts("OK");
    }
    return 0;
}

/* Find our response in a message; 1 found (*code set), 0 not ours. */
static int match_response(const struct tern_message *m, const char *corr, int *code)
{
    cJSON *root = cJSON_ParseWithLength((const char *)m->payload, m->payload_len);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "responses");
    const cJSON *r;
    int found = 0;
    cJSON_ArrayForEach(r, arr)
    {
        const cJSON *cd = cJSON_GetObjectItemCaseSensitive(r, "correlationData");
        if (cJSON_IsString(cd) && strcmp(cd->valuestring, corr) == 0) {
            *code = print_answer(r);
            found = 1;
            break;
        }
    }
    cJSON_Delete(root);
    return found;
}

static int exchange(const struct ctl *o, const char *payload, const char *corr)
{
    struct tern_client_options opt;
    tern_client_options_init(&opt);
    if (o->host != NULL) {
        opt.host = o->host;
    }
    if (o->port != 0) {
        opt.port = (uint16_t)o->port;
    }
    opt.version = (uint8_t)o->version;
    opt.client_id = o->id;
    opt.username = o->username;
    if (o->password != NULL) {
        opt.password = o->password;
        opt.password_len = strlen(o->password);
    }
    opt.auto_reconnect = false;
    struct tern_client *c = NULL;
    int r = tern_client_new(&opt, &c);
    if (r != TERN_OK) {
        fprintf(stderr, "tern ctl: %s\n", tern_strerror(r));
        return 1;
    }
    if (o->debug) {
        struct tern_client_callbacks cb;
        memset(&cb, 0, sizeof cb);
        cb.on_log = on_log;
        tern_client_set_callbacks(c, &cb, NULL);
    }
    int code = 1;
    uint8_t reason = 0;
    if (tern_client_loop_start(c) != TERN_OK) {
        fprintf(stderr, "tern ctl: cannot start the client thread\n");
        goto out;
    }
    r = tern_client_connect_wait(c, CTL_TIMEOUT_MS, &reason);
    if (r != TERN_OK) {
        fprintf(stderr, "Error: connection refused or failed: %s\n",
                r == TERN_EDENIED ? tern_reason_string(reason) : tern_strerror(r));
        code = r == TERN_EDENIED && reason != 0 ? reason : 1;
        goto out;
    }
    const char *filters[1] = {TERN_DYNSEC_RESPONSE_TOPIC};
    uint8_t opts[1] = {TERN_SUB_QOS(1)};
    uint8_t reasons[1] = {0};
    r = tern_client_subscribe_wait(c, filters, opts, 1, NULL, 0, CTL_TIMEOUT_MS, reasons);
    if (r != TERN_OK) {
        fprintf(stderr, "Error: subscribing to %s failed: %s\n", TERN_DYNSEC_RESPONSE_TOPIC,
                r == TERN_EDENIED ? tern_reason_string(reasons[0]) : tern_strerror(r));
        goto out;
    }
    r = tern_client_publish_wait(c, TERN_DYNSEC_TOPIC, payload, strlen(payload), 1, false, NULL, 0,
                                 CTL_TIMEOUT_MS, &reason);
    if (r != TERN_OK) {
        fprintf(stderr, "Error: publishing the command failed: %s\n",
                r == TERN_EDENIED ? tern_reason_string(reason) : tern_strerror(r));
        goto out;
    }
    uint64_t deadline = tern_time_mono_ms() + (uint64_t)o->timeout_s * 1000u;
    for (;;) {
        uint64_t now = tern_time_mono_ms();
        if (now >= deadline) {
            fprintf(stderr,
                    "Error: no answer within %d s (is dynamic security enabled, and may "
                    "this user publish to %s?)\n",
                    o->timeout_s, TERN_DYNSEC_TOPIC);
            break;
        }
        struct tern_message *m = NULL;
        r = tern_client_receive(c, (int)(deadline - now), &m);
        if (r == TERN_ETIMEDOUT) {
            continue;
        }
        if (r != TERN_OK) {
            fprintf(stderr, "Error: connection lost while waiting for the answer\n");
            break;
        }
        int found = match_response(m, corr, &code);
        tern_message_free(m);
        if (found) {
            break;
        }
    }
    tern_client_disconnect_wait(c, 0, NULL, 0, 2000);
out:
    tern_client_free(c);
    return code;
}

static int dynsec_init(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "Usage: tern ctl dynsec init FILE ADMIN_USER [ADMIN_PASSWORD]\n");
        return 1;
    }
    char pw[MAX_PASSWORD];
    const char *password = argc == 4 ? argv[3] : NULL;
    if (password == NULL) {
        if (ask_new_password(pw, sizeof pw) != 0) {
            return 1;
        }
        password = pw;
    }
    char err[512] = "";
    int rc = tern_dynsec_init_file(argv[1], argv[2], password, 0, err, sizeof err);
    memset(pw, 0, sizeof pw);
    if (rc != TERN_OK) {
        fprintf(stderr, "Error: %s\n", err[0] != '\0' ? err : tern_strerror(rc));
        return 1;
    }
    printf("The client '%s' has been created in the file '%s'.\n"
           "It may use $CONTROL/dynamic-security/# and read everything, but publishes nothing\n"
           "else. Create application clients and roles with tern ctl dynsec createClient,\n"
           "createRole, addRoleACL and addClientRole.\n",
           argv[2], argv[1]);
    return 0;
}

int cli_ctl(int argc, char **argv)
{
    cJSON_Hooks hooks = {tern_malloc, tern_free};
    cJSON_InitHooks(&hooks);
    struct ctl o = {NULL, 0, NULL, NULL, NULL, 5, CTL_TIMEOUT_MS / 1000, false};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (a[0] != '-') {
            break;
        }
        if (strcmp(a, "-d") == 0 || strcmp(a, "--debug") == 0) {
            o.debug = true;
            continue;
        }
        if (v == NULL) {
            fprintf(stderr, "tern ctl: %s needs a value\n", a);
            return 1;
        }
        i++;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--host") == 0) {
            o.host = v;
        } else if (strcmp(a, "-p") == 0 || strcmp(a, "--port") == 0) {
            if (!parse_int(v, &o.port) || o.port < 1 || o.port > 65535) {
                fprintf(stderr, "tern ctl: bad port \"%s\"\n", v);
                return 1;
            }
        } else if (strcmp(a, "-u") == 0 || strcmp(a, "--username") == 0) {
            o.username = v;
        } else if (strcmp(a, "-P") == 0 || strcmp(a, "--pw") == 0) {
            o.password = v;
        } else if (strcmp(a, "-i") == 0 || strcmp(a, "--id") == 0) {
            o.id = v;
        } else if (strcmp(a, "-V") == 0) {
            if (strcmp(v, "5") == 0 || strcmp(v, "mqttv5") == 0) {
                o.version = 5;
            } else if (strcmp(v, "311") == 0 || strcmp(v, "mqttv311") == 0) {
                o.version = 4;
            } else {
                fprintf(stderr, "tern ctl: bad protocol version \"%s\"\n", v);
                return 1;
            }
        } else if (strcmp(a, "-W") == 0) {
            if (!parse_int(v, &o.timeout_s) || o.timeout_s < 1) {
                fprintf(stderr, "tern ctl: bad timeout \"%s\"\n", v);
                return 1;
            }
        } else {
            fprintf(stderr, "tern ctl: unknown option %s\n", a);
            usage(stderr);
            return 1;
        }
    }
    if (i >= argc || strcmp(argv[i], "dynsec") != 0) {
        fprintf(stderr, "tern ctl: want a module: dynsec\n");
        usage(stderr);
        return 1;
    }
    i++;
    if (i >= argc || strcmp(argv[i], "help") == 0) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? 1 : 0;
    }
    if (strcmp(argv[i], "init") == 0) {
        return dynsec_init(argc - i, argv + i);
    }
    char pwbuf[MAX_PASSWORD] = "";
    cJSON *cmd = build_command(argc - i, argv + i, pwbuf, sizeof pwbuf);
    if (cmd == NULL) {
        memset(pwbuf, 0, sizeof pwbuf);
        return 1;
    }
    /* A unique correlationData picks our answer out of the shared response topic. */
    char corr[40];
    snprintf(corr, sizeof corr, "tern-ctl-%d-%llu", (int)getpid(),
             (unsigned long long)tern_time_mono_ms());
    cJSON_DeleteItemFromObjectCaseSensitive(cmd, "correlationData");
    cJSON *req = cJSON_CreateObject();
    cJSON *arr = req != NULL ? cJSON_AddArrayToObject(req, "commands") : NULL;
    char *payload = NULL;
    if (arr != NULL && cJSON_AddStringToObject(cmd, "correlationData", corr) != NULL) {
        cJSON_AddItemToArray(arr, cmd);
        cmd = NULL;
        payload = cJSON_PrintUnformatted(req);
    }
    cJSON_Delete(cmd);
    cJSON_Delete(req);
    memset(pwbuf, 0, sizeof pwbuf);
    if (payload == NULL) {
        fprintf(stderr, "tern ctl: out of memory\n");
        return 1;
    }
    int code = exchange(&o, payload, corr);
    memset(payload, 0, strlen(payload));
    tern_free(payload);
    return code;
}
