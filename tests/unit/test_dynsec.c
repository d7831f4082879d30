/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for dynamic security (src/broker/dynsec.c): every command with its error cases
 * (the error strings are the ones Mosquitto 2.0's plugin answers, checked against it), ACL
 * evaluation order and priorities, %c/%u substitution, authentication, loading files written
 * by mosquitto_ctrl and by Mosquitto's broker, save/load round trip, atomic save, init, and
 * allocation failures (a failed command leaves the state as it was).
 */
#include "dynsec/dynsec.h"

#include "common/alloc.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define A TERN_DYNSEC_ALLOW
#define D TERN_DYNSEC_DENY
#define N TERN_DYNSEC_NOMATCH

/* Run one request; returns the response (owned). */
static char *request(struct tern_dynsec *ds, const char *req, struct tern_dynsec_effects *fx,
                     bool *changed)
{
    char *resp = NULL;
    size_t len = 0;
    bool ch = false;
    int rc = tern_dynsec_command(ds, req, strlen(req), &resp, &len, fx, &ch);
    CHECK_ERR(rc, TERN_OK);
    if (changed != NULL) {
        *changed = ch;
    }
    return resp;
}

/*
 * Run one command (the JSON object text) and return its error string, "" on success.
 * The returned buffer is static; `data_out` (optional) receives the printed data object.
 */
static char last_error[256];
static char *last_data;

static const char *cmd(struct tern_dynsec *ds, const char *one)
{
    char req[4096];
    snprintf(req, sizeof req, "{\"commands\":[%s]}", one);
    char *resp = request(ds, req, NULL, NULL);
    tern_free(last_data);
    last_data = NULL;
    last_error[0] = '\0';
    cJSON *root = cJSON_Parse(resp);
    CHECK(root != NULL);
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "responses");
    CHECK_EQ(cJSON_GetArraySize(arr), 1);
    cJSON *r0 = cJSON_GetArrayItem(arr, 0);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(r0, "error");
    if (cJSON_IsString(e)) {
        snprintf(last_error, sizeof last_error, "%s", e->valuestring);
    }
    cJSON *d = cJSON_GetObjectItemCaseSensitive(r0, "data");
    if (d != NULL) {
        last_data = cJSON_PrintUnformatted(d);
    }
    cJSON_Delete(root);
    tern_free(resp);
    return last_error;
}

#define OK(ds, c)         CHECK_STR(cmd(ds, c), "")
#define FAILS(ds, c, msg) CHECK_STR(cmd(ds, c), msg)
#define CHECK_STR(got, want)                                                                   \
    do {                                                                                       \
        const char *_g = (got), *_w = (want);                                                  \
        if (strcmp(_g, _w) != 0) {                                                             \
            fprintf(stderr, "  %s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, _g, _w); \
            tern_test_failed_checks++;                                                         \
        }                                                                                      \
    } while (0)
#define DATA_HAS(s)                                                            \
    do {                                                                       \
        if (last_data == NULL || strstr(last_data, (s)) == NULL) {             \
            fprintf(stderr, "  %s:%d: data %s lacks %s\n", __FILE__, __LINE__, \
                    last_data != NULL ? last_data : "(none)", (s));            \
            tern_test_failed_checks++;                                         \
        }                                                                      \
    } while (0)

static struct tern_dynsec *fresh(void)
{
    struct tern_dynsec *ds = NULL;
    CHECK_ERR(tern_dynsec_new(&ds), TERN_OK);
    tern_dynsec_set_iterations(ds, 1000); /* keep the tests fast; the broker uses the default */
    return ds;
}

static int auth(struct tern_dynsec *ds, const char *u, const char *cid, const char *pw)
{
    return tern_dynsec_authenticate(ds, u, cid, pw, strlen(pw));
}

static enum tern_dynsec_result chk(struct tern_dynsec *ds, const char *u, const char *cid,
                                   enum tern_dynsec_access a, const char *topic)
{
    return tern_dynsec_check(ds, u, cid, a, topic, strlen(topic));
}

static void test_request_errors(void)
{
    struct tern_dynsec *ds = fresh();
    struct {
        const char *req, *want;
    } cases[] = {
        {"not json", "{\"responses\":[{\"command\":\"Unknown command\",\"error\":\"Payload not "
                     "valid JSON\"}]}"},
        {"{}", "{\"responses\":[{\"command\":\"Unknown command\",\"error\":\"Invalid/missing "
               "commands\"}]}"},
        {"{\"commands\":5}", "{\"responses\":[{\"command\":\"Unknown command\",\"error\":"
                             "\"Invalid/missing commands\"}]}"},
        {"{\"commands\":[5]}", "{\"responses\":[{\"command\":\"Unknown command\",\"error\":"
                               "\"Command not an object\"}]}"},
        {"{\"commands\":[{\"x\":1}]}", "{\"responses\":[{\"command\":\"Unknown command\","
                                       "\"error\":\"Missing command\"}]}"},
        {"{\"commands\":[{\"command\":\"bogus\"}]}",
         "{\"responses\":[{\"command\":\"bogus\",\"error\":\"Unknown command\"}]}"},
        {"{\"commands\":[{\"command\":\"getAnonymousGroup\",\"correlationData\":7}]}",
         "{\"responses\":[{\"command\":\"getAnonymousGroup\",\"error\":\"Invalid "
         "correlationData data type.\"}]}"},
        {"{\"commands\":[{\"command\":\"getDefaultACLAccess\",\"correlationData\":\"abc\"}]}",
         "{\"responses\":[{\"command\":\"getDefaultACLAccess\",\"data\":{\"acls\":[{\"acltype\":"
         "\"publishClientSend\",\"allow\":false},{\"acltype\":\"publishClientReceive\",\"allow\":"
         "true},{\"acltype\":\"subscribe\",\"allow\":false},{\"acltype\":\"unsubscribe\","
         "\"allow\":true}]},\"correlationData\":\"abc\"}]}"},
        {"{\"commands\":[]}", "{\"responses\":[]}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool changed = true;
        char *r = request(ds, cases[i].req, NULL, &changed);
        CHECK_STR(r, cases[i].want);
        CHECK(!changed);
        tern_free(r);
    }
    /* Several commands: one response each, in order; a failure does not stop the rest. */
    char *r = request(ds,
                      "{\"commands\":[{\"command\":\"createRole\",\"rolename\":\"r\"},"
                      "{\"command\":\"createRole\",\"rolename\":\"r\"},"
                      "{\"command\":\"getRole\",\"rolename\":\"r\"}]}",
                      NULL, NULL);
    CHECK_STR(r, "{\"responses\":[{\"command\":\"createRole\"},{\"command\":\"createRole\","
                 "\"error\":\"Role already exists\"},{\"command\":\"getRole\",\"data\":{\"role\":"
                 "{\"rolename\":\"r\",\"acls\":[]}}}]}");
    tern_free(r);
    tern_dynsec_free(ds);
}

static void test_client_commands(void)
{
    struct tern_dynsec *ds = fresh();
    OK(ds, "{\"command\":\"createRole\",\"rolename\":\"r1\"}");
    OK(ds, "{\"command\":\"createGroup\",\"groupname\":\"g1\"}");
    OK(ds, "{\"command\":\"createClient\",\"username\":\"u1\",\"password\":\"p1\","
           "\"clientid\":\"c1\",\"textname\":\"T\",\"textdescription\":\"D\","
           "\"roles\":[{\"rolename\":\"r1\",\"priority\":3}],"
           "\"groups\":[{\"groupname\":\"g1\",\"priority\":4}]}");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":\"u1\"}", "Client already exists");
    FAILS(ds, "{\"command\":\"createClient\"}", "Invalid/missing username");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":5}", "Invalid/missing username");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":\"\"}", "Invalid/missing username");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":\"u5\",\"password\":5}",
          "Invalid/missing password");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":\"u5\",\"password\":\"\"}",
          "Empty password is not allowed");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":\"u6\",\"clientid\":5}",
          "Invalid/missing client id");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":\"u7\",\"textname\":5}",
          "Invalid/missing textname");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":\"u7\",\"textdescription\":5}",
          "Invalid/missing textdescription");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":\"u8\",\"roles\":5}",
          "'roles' not an array or missing/invalid rolename");
    FAILS(ds, "{\"command\":\"createClient\",\"username\":\"u8\",\"groups\":[{}]}",
          "'groups' not an array or missing/invalid groupname");
    FAILS(ds,
          "{\"command\":\"createClient\",\"username\":\"u2\",\"roles\":[{\"rolename\":\"no\"}]}",
          "Role not found");
    FAILS(ds,
          "{\"command\":\"createClient\",\"username\":\"u3\",\"groups\":[{\"groupname\":\"no\"}]}",
          "Group not found");
    OK(ds, "{\"command\":\"getClient\",\"username\":\"u1\"}");
    CHECK_STR(last_data, "{\"client\":{\"username\":\"u1\",\"clientid\":\"c1\",\"textname\":\"T\","
                         "\"textdescription\":\"D\",\"roles\":[{\"rolename\":\"r1\",\"priority\":3}"
                         "],\"groups\":[{\"groupname\":\"g1\",\"priority\":4}]}}");
    FAILS(ds, "{\"command\":\"getClient\",\"username\":\"no\"}", "Client not found");
    CHECK_ERR(auth(ds, "u1", "c1", "p1"), TERN_OK);
    CHECK_ERR(auth(ds, "u1", "c1", "p2"), TERN_EDENIED);
    CHECK_ERR(auth(ds, "u1", "other", "p1"), TERN_EDENIED); /* client id binding */
    CHECK_ERR(auth(ds, "nobody", "c1", "p1"), TERN_ENOTFOUND);
    char *hash = NULL;
    CHECK_ERR(tern_dynsec_auth_lookup(ds, "u1", "c1", &hash), TERN_OK);
    CHECK(hash != NULL && strncmp(hash, "$7$1000$", 8) == 0);
    tern_free(hash);
    CHECK_ERR(tern_dynsec_auth_lookup(ds, "u1", "c2", &hash), TERN_EDENIED);
    CHECK(hash == NULL);
    CHECK_ERR(tern_dynsec_auth_lookup(ds, "nobody", "c1", &hash), TERN_ENOTFOUND);

    /* setClientPassword */
    FAILS(ds, "{\"command\":\"setClientPassword\",\"username\":\"no\",\"password\":\"x\"}",
          "Client not found");
    FAILS(ds, "{\"command\":\"setClientPassword\",\"username\":\"u1\"}",
          "Invalid/missing password");
    FAILS(ds, "{\"command\":\"setClientPassword\",\"username\":\"u1\",\"password\":\"\"}",
          "Empty password is not allowed");
    FAILS(ds, "{\"command\":\"setClientPassword\",\"password\":\"x\"}", "Invalid/missing username");
    OK(ds, "{\"command\":\"setClientPassword\",\"username\":\"u1\",\"password\":\"new\"}");
    CHECK_ERR(auth(ds, "u1", "c1", "p1"), TERN_EDENIED);
    CHECK_ERR(auth(ds, "u1", "c1", "new"), TERN_OK);

    /* setClientId: empty or missing removes the binding */
    FAILS(ds, "{\"command\":\"setClientId\",\"username\":\"no\"}", "Client not found");
    FAILS(ds, "{\"command\":\"setClientId\",\"username\":\"u1\",\"clientid\":1}",
          "Invalid/missing client id");
    OK(ds, "{\"command\":\"setClientId\",\"username\":\"u1\"}");
    CHECK_ERR(auth(ds, "u1", "anything", "new"), TERN_OK);
    OK(ds, "{\"command\":\"setClientId\",\"username\":\"u1\",\"clientid\":\"c9\"}");
    CHECK_ERR(auth(ds, "u1", "anything", "new"), TERN_EDENIED);
    CHECK_ERR(auth(ds, "u1", "c9", "new"), TERN_OK);

    /* enable / disable */
    FAILS(ds, "{\"command\":\"disableClient\",\"username\":\"no\"}", "Client not found");
    FAILS(ds, "{\"command\":\"enableClient\",\"username\":\"no\"}", "Client not found");
    FAILS(ds, "{\"command\":\"disableClient\"}", "Invalid/missing username");
    OK(ds, "{\"command\":\"disableClient\",\"username\":\"u1\"}");
    CHECK_ERR(auth(ds, "u1", "c9", "new"), TERN_EDENIED);
    OK(ds, "{\"command\":\"getClient\",\"username\":\"u1\"}");
    DATA_HAS("\"disabled\":true");
    OK(ds, "{\"command\":\"enableClient\",\"username\":\"u1\"}");
    CHECK_ERR(auth(ds, "u1", "c9", "new"), TERN_OK);

    /* roles of a client */
    OK(ds, "{\"command\":\"createRole\",\"rolename\":\"r2\"}");
    FAILS(ds, "{\"command\":\"addClientRole\",\"username\":\"u1\",\"rolename\":\"no\"}",
          "Role not found");
    FAILS(ds, "{\"command\":\"addClientRole\",\"username\":\"no\",\"rolename\":\"r2\"}",
          "Client not found");
    FAILS(ds, "{\"command\":\"addClientRole\",\"username\":\"u1\"}", "Invalid/missing rolename");
    OK(ds, "{\"command\":\"addClientRole\",\"username\":\"u1\",\"rolename\":\"r2\","
           "\"priority\":9}");
    FAILS(ds, "{\"command\":\"addClientRole\",\"username\":\"u1\",\"rolename\":\"r2\"}",
          "Client is already in this role");
    OK(ds, "{\"command\":\"getClient\",\"username\":\"u1\"}");
    DATA_HAS(
        "\"roles\":[{\"rolename\":\"r2\",\"priority\":9},{\"rolename\":\"r1\",\"priority\":3}]");
    FAILS(ds, "{\"command\":\"removeClientRole\",\"username\":\"u1\",\"rolename\":\"no\"}",
          "Role not found");
    FAILS(ds, "{\"command\":\"removeClientRole\",\"username\":\"no\",\"rolename\":\"r2\"}",
          "Client not found");
    OK(ds, "{\"command\":\"removeClientRole\",\"username\":\"u1\",\"rolename\":\"r2\"}");
    OK(ds, "{\"command\":\"removeClientRole\",\"username\":\"u1\",\"rolename\":\"r2\"}");

    /* modifyClient replaces what it names and keeps the rest */
    FAILS(ds, "{\"command\":\"modifyClient\",\"username\":\"no\"}", "Client not found");
    FAILS(ds, "{\"command\":\"modifyClient\",\"username\":\"u1\",\"roles\":[{\"rolename\":\"x\"}]}",
          "Role not found");
    FAILS(ds, "{\"command\":\"modifyClient\",\"username\":\"u1\",\"password\":\"\"}",
          "Empty password is not allowed");
    OK(ds, "{\"command\":\"modifyClient\",\"username\":\"u1\",\"textname\":\"TT\","
           "\"clientid\":\"cc\",\"password\":\"pp\",\"roles\":[{\"rolename\":\"r2\"}],"
           "\"groups\":[]}");
    OK(ds, "{\"command\":\"getClient\",\"username\":\"u1\"}");
    CHECK_STR(last_data, "{\"client\":{\"username\":\"u1\",\"clientid\":\"cc\",\"textname\":\"TT\","
                         "\"textdescription\":\"D\",\"roles\":[{\"rolename\":\"r2\"}],"
                         "\"groups\":[]}}");
    CHECK_ERR(auth(ds, "u1", "cc", "pp"), TERN_OK);

    /* client without a password cannot log in */
    OK(ds, "{\"command\":\"createClient\",\"username\":\"nopw\"}");
    CHECK_ERR(auth(ds, "nopw", "x", ""), TERN_EDENIED);

    /* list */
    OK(ds, "{\"command\":\"listClients\"}");
    CHECK_STR(last_data, "{\"totalCount\":2,\"clients\":[\"nopw\",\"u1\"]}");
    OK(ds, "{\"command\":\"listClients\",\"verbose\":true,\"count\":1,\"offset\":1}");
    CHECK_STR(last_data, "{\"totalCount\":2,\"clients\":[{\"username\":\"u1\",\"clientid\":\"cc\","
                         "\"textname\":\"TT\",\"textdescription\":\"D\",\"roles\":[{\"rolename\":"
                         "\"r2\"}],\"groups\":[]}]}");

    /* delete */
    FAILS(ds, "{\"command\":\"deleteClient\",\"username\":\"no\"}", "Client not found");
    FAILS(ds, "{\"command\":\"deleteClient\"}", "Invalid/missing username");
    OK(ds, "{\"command\":\"deleteClient\",\"username\":\"u1\"}");
    CHECK_ERR(auth(ds, "u1", "cc", "pp"), TERN_ENOTFOUND);
    CHECK(!tern_dynsec_has_client(ds, "u1"));
    CHECK(tern_dynsec_has_client(ds, "nopw"));
    tern_dynsec_free(ds);
}

static void test_group_commands(void)
{
    struct tern_dynsec *ds = fresh();
    OK(ds, "{\"command\":\"createRole\",\"rolename\":\"r1\"}");
    OK(ds, "{\"command\":\"createClient\",\"username\":\"u1\"}");
    OK(ds, "{\"command\":\"createGroup\",\"groupname\":\"g1\",\"textname\":\"GT\","
           "\"roles\":[{\"rolename\":\"r1\",\"priority\":2}]}");
    FAILS(ds, "{\"command\":\"createGroup\",\"groupname\":\"g1\"}", "Group already exists");
    FAILS(ds, "{\"command\":\"createGroup\"}", "Invalid/missing groupname");
    FAILS(ds, "{\"command\":\"createGroup\",\"groupname\":\"g2\",\"roles\":[{\"rolename\":\"x\"}]}",
          "Role not found");
    OK(ds, "{\"command\":\"getGroup\",\"groupname\":\"g1\"}");
    CHECK_STR(last_data, "{\"group\":{\"groupname\":\"g1\",\"textname\":\"GT\",\"clients\":[],"
                         "\"roles\":[{\"rolename\":\"r1\",\"priority\":2}]}}");
    FAILS(ds, "{\"command\":\"getGroup\",\"groupname\":\"no\"}", "Group not found");
    OK(ds, "{\"command\":\"addGroupClient\",\"groupname\":\"g1\",\"username\":\"u1\","
           "\"priority\":5}");
    FAILS(ds, "{\"command\":\"addGroupClient\",\"groupname\":\"g1\",\"username\":\"u1\"}",
          "Client is already in this group");
    FAILS(ds, "{\"command\":\"addGroupClient\",\"groupname\":\"no\",\"username\":\"u1\"}",
          "Group not found");
    FAILS(ds, "{\"command\":\"addGroupClient\",\"groupname\":\"g1\",\"username\":\"no\"}",
          "Client not found");
    OK(ds, "{\"command\":\"getClient\",\"username\":\"u1\"}");
    DATA_HAS("\"groups\":[{\"groupname\":\"g1\",\"priority\":5}]");
    OK(ds, "{\"command\":\"getGroup\",\"groupname\":\"g1\"}");
    DATA_HAS("\"clients\":[{\"username\":\"u1\",\"priority\":5}]");
    FAILS(ds, "{\"command\":\"removeGroupClient\",\"groupname\":\"g1\",\"username\":\"no\"}",
          "Client not found");
    FAILS(ds, "{\"command\":\"removeGroupClient\",\"groupname\":\"no\",\"username\":\"u1\"}",
          "Group not found");
    FAILS(ds, "{\"command\":\"addGroupRole\",\"groupname\":\"g1\",\"rolename\":\"no\"}",
          "Role not found");
    FAILS(ds, "{\"command\":\"addGroupRole\",\"groupname\":\"no\",\"rolename\":\"r1\"}",
          "Group not found");
    FAILS(ds, "{\"command\":\"addGroupRole\",\"groupname\":\"g1\",\"rolename\":\"r1\"}",
          "Group is already in this role");
    OK(ds, "{\"command\":\"removeGroupRole\",\"groupname\":\"g1\",\"rolename\":\"r1\"}");
    OK(ds, "{\"command\":\"removeGroupRole\",\"groupname\":\"g1\",\"rolename\":\"r1\"}");
    FAILS(ds, "{\"command\":\"removeGroupRole\",\"groupname\":\"g1\",\"rolename\":\"no\"}",
          "Role not found");
    OK(ds, "{\"command\":\"addGroupRole\",\"groupname\":\"g1\",\"rolename\":\"r1\"}");
    OK(ds, "{\"command\":\"listGroups\"}");
    CHECK_STR(last_data, "{\"totalCount\":1,\"groups\":[\"g1\"]}");
    OK(ds, "{\"command\":\"listGroups\",\"verbose\":true}");
    CHECK_STR(last_data, "{\"totalCount\":1,\"groups\":[{\"groupname\":\"g1\",\"textname\":\"GT\","
                         "\"clients\":[{\"username\":\"u1\",\"priority\":5}],\"roles\":[{"
                         "\"rolename\":\"r1\"}]}]}");
    /* anonymous group */
    OK(ds, "{\"command\":\"getAnonymousGroup\"}");
    CHECK_STR(last_data, "{\"group\":{}}");
    FAILS(ds, "{\"command\":\"setAnonymousGroup\",\"groupname\":\"no\"}", "Group not found");
    FAILS(ds, "{\"command\":\"setAnonymousGroup\"}", "Invalid/missing groupname");
    OK(ds, "{\"command\":\"setAnonymousGroup\",\"groupname\":\"g1\"}");
    OK(ds, "{\"command\":\"getAnonymousGroup\"}");
    CHECK_STR(last_data, "{\"group\":{\"groupname\":\"g1\"}}");
    FAILS(ds, "{\"command\":\"deleteGroup\",\"groupname\":\"g1\"}",
          "Deleting the anonymous group is forbidden");
    /* modifyGroup replaces roles and members */
    FAILS(ds, "{\"command\":\"modifyGroup\",\"groupname\":\"no\"}", "Group not found");
    FAILS(ds,
          "{\"command\":\"modifyGroup\",\"groupname\":\"g1\",\"clients\":[{\"username\":\"x\"}]}",
          "Client not found");
    OK(ds, "{\"command\":\"createClient\",\"username\":\"u2\"}");
    OK(ds, "{\"command\":\"modifyGroup\",\"groupname\":\"g1\",\"textname\":\"x\","
           "\"textdescription\":\"y\",\"roles\":[],\"clients\":[{\"username\":\"u2\","
           "\"priority\":3}]}");
    OK(ds, "{\"command\":\"getGroup\",\"groupname\":\"g1\"}");
    CHECK_STR(last_data, "{\"group\":{\"groupname\":\"g1\",\"textname\":\"x\",\"textdescription\":"
                         "\"y\",\"clients\":[{\"username\":\"u2\",\"priority\":3}],\"roles\":[]}}");
    OK(ds, "{\"command\":\"getClient\",\"username\":\"u1\"}");
    DATA_HAS("\"groups\":[]");
    /* deleteGroup removes memberships */
    OK(ds, "{\"command\":\"createGroup\",\"groupname\":\"g3\"}");
    OK(ds, "{\"command\":\"addGroupClient\",\"groupname\":\"g3\",\"username\":\"u2\"}");
    OK(ds, "{\"command\":\"deleteGroup\",\"groupname\":\"g3\"}");
    FAILS(ds, "{\"command\":\"deleteGroup\",\"groupname\":\"g3\"}", "Group not found");
    OK(ds, "{\"command\":\"getClient\",\"username\":\"u2\"}");
    DATA_HAS("\"groups\":[{\"groupname\":\"g1\",\"priority\":3}]");
    tern_dynsec_free(ds);
}

static void test_role_commands(void)
{
    struct tern_dynsec *ds = fresh();
    OK(ds, "{\"command\":\"createRole\",\"rolename\":\"r1\",\"textname\":\"RT\",\"acls\":["
           "{\"acltype\":\"subscribePattern\",\"topic\":\"a/#\",\"priority\":1,\"allow\":true}]}");
    FAILS(ds, "{\"command\":\"createRole\",\"rolename\":\"r1\"}", "Role already exists");
    FAILS(ds, "{\"command\":\"createRole\"}", "Invalid/missing rolename");
    FAILS(ds,
          "{\"command\":\"createRole\",\"rolename\":\"r2\",\"acls\":[{\"acltype\":\"bogus\","
          "\"topic\":\"a\"}]}",
          "Unknown acltype");
    FAILS(ds,
          "{\"command\":\"createRole\",\"rolename\":\"r3\",\"acls\":[{\"acltype\":"
          "\"publishClientSend\",\"topic\":\"a/#/b\"}]}",
          "Invalid ACL topic");
    FAILS(ds, "{\"command\":\"getRole\",\"rolename\":\"no\"}", "Role not found");
    OK(ds, "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"publishClientSend\","
           "\"topic\":\"x/+\",\"allow\":false,\"priority\":4}");
    FAILS(ds,
          "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"publishClientSend\","
          "\"topic\":\"x/+\",\"allow\":true}",
          "ACL with this topic already exists");
    FAILS(ds,
          "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"publishClientSend\","
          "\"topic\":\"x/#/y\",\"allow\":true}",
          "Invalid ACL topic");
    FAILS(ds,
          "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"bogus\","
          "\"topic\":\"x\"}",
          "Unknown acltype");
    FAILS(ds, "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"publishClientSend\"}",
          "Invalid/missing topic");
    FAILS(ds,
          "{\"command\":\"addRoleACL\",\"rolename\":\"no\",\"acltype\":\"publishClientSend\","
          "\"topic\":\"q\"}",
          "Role not found");
    FAILS(ds, "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"topic\":\"q\"}",
          "Invalid/missing acltype");
    OK(ds, "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"publishClientSend\","
           "\"topic\":\"q\"}");
    OK(ds, "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"subscribeLiteral\","
           "\"topic\":\"l/#\",\"allow\":true}");
    OK(ds, "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"unsubscribeLiteral\","
           "\"topic\":\"l/#\",\"allow\":true}");
    OK(ds, "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"unsubscribePattern\","
           "\"topic\":\"l/#\",\"allow\":true}");
    OK(ds, "{\"command\":\"addRoleACL\",\"rolename\":\"r1\",\"acltype\":\"publishClientReceive\","
           "\"topic\":\"l/#\",\"allow\":true,\"priority\":-3}");
    /* Same order as Mosquitto: by type, then priority. */
    OK(ds, "{\"command\":\"getRole\",\"rolename\":\"r1\"}");
    CHECK_STR(
        last_data,
        "{\"role\":{\"rolename\":\"r1\",\"textname\":\"RT\",\"acls\":[{\"acltype\":"
        "\"publishClientSend\",\"topic\":\"x/+\",\"priority\":4,\"allow\":false},{\"acltype\":"
        "\"publishClientSend\",\"topic\":\"q\",\"priority\":0,\"allow\":false},{\"acltype\":"
        "\"publishClientReceive\",\"topic\":\"l/#\",\"priority\":-3,\"allow\":true},{"
        "\"acltype\":\"subscribeLiteral\",\"topic\":\"l/#\",\"priority\":0,\"allow\":true},{"
        "\"acltype\":\"subscribePattern\",\"topic\":\"a/#\",\"priority\":1,\"allow\":true},{"
        "\"acltype\":\"unsubscribeLiteral\",\"topic\":\"l/#\",\"priority\":0,\"allow\":true},"
        "{\"acltype\":\"unsubscribePattern\",\"topic\":\"l/#\",\"priority\":0,\"allow\":true}"
        "]}}");
    FAILS(ds,
          "{\"command\":\"removeRoleACL\",\"rolename\":\"r1\",\"acltype\":\"publishClientSend\","
          "\"topic\":\"nope\"}",
          "ACL not found");
    FAILS(ds,
          "{\"command\":\"removeRoleACL\",\"rolename\":\"r1\",\"acltype\":\"bogus\","
          "\"topic\":\"nope\"}",
          "Unknown acltype");
    FAILS(ds,
          "{\"command\":\"removeRoleACL\",\"rolename\":\"no\",\"acltype\":\"publishClientSend\","
          "\"topic\":\"nope\"}",
          "Role not found");
    FAILS(ds,
          "{\"command\":\"removeRoleACL\",\"rolename\":\"r1\",\"acltype\":\"publishClientSend\"}",
          "Invalid/missing topic");
    OK(ds, "{\"command\":\"removeRoleACL\",\"rolename\":\"r1\",\"acltype\":\"publishClientSend\","
           "\"topic\":\"x/+\"}");
    OK(ds,
       "{\"command\":\"modifyRole\",\"rolename\":\"r1\",\"textname\":\"N\","
       "\"textdescription\":\"DD\",\"acls\":[{\"acltype\":\"publishClientSend\",\"topic\":\"z\","
       "\"allow\":true}]}");
    OK(ds, "{\"command\":\"getRole\",\"rolename\":\"r1\"}");
    CHECK_STR(last_data, "{\"role\":{\"rolename\":\"r1\",\"textname\":\"N\",\"textdescription\":"
                         "\"DD\",\"acls\":[{\"acltype\":\"publishClientSend\",\"topic\":\"z\","
                         "\"priority\":0,\"allow\":true}]}}");
    FAILS(ds, "{\"command\":\"modifyRole\",\"rolename\":\"no\"}", "Role does not exist");
    FAILS(ds,
          "{\"command\":\"modifyRole\",\"rolename\":\"r1\",\"acls\":[{\"acltype\":"
          "\"publishClientSend\",\"topic\":\"z\"},{\"acltype\":\"publishClientSend\","
          "\"topic\":\"z\"}]}",
          "ACL with this topic already exists");
    OK(ds, "{\"command\":\"createRole\",\"rolename\":\"r0\"}");
    OK(ds, "{\"command\":\"listRoles\"}");
    CHECK_STR(last_data, "{\"totalCount\":2,\"roles\":[\"r0\",\"r1\"]}");
    OK(ds, "{\"command\":\"listRoles\",\"verbose\":true,\"count\":1}");
    CHECK_STR(last_data, "{\"totalCount\":2,\"roles\":[{\"rolename\":\"r0\",\"acls\":[]}]}");
    /* deleteRole unlinks it from clients and groups */
    OK(ds, "{\"command\":\"createGroup\",\"groupname\":\"g\",\"roles\":[{\"rolename\":\"r1\"}]}");
    OK(ds, "{\"command\":\"createClient\",\"username\":\"u1\",\"roles\":[{\"rolename\":\"r1\","
           "\"priority\":1}]}");
    OK(ds, "{\"command\":\"deleteRole\",\"rolename\":\"r1\"}");
    FAILS(ds, "{\"command\":\"deleteRole\",\"rolename\":\"r1\"}", "Role not found");
    OK(ds, "{\"command\":\"getClient\",\"username\":\"u1\"}");
    DATA_HAS("\"roles\":[]");
    OK(ds, "{\"command\":\"getGroup\",\"groupname\":\"g\"}");
    DATA_HAS("\"roles\":[]");
    /* default ACL access */
    FAILS(ds, "{\"command\":\"setDefaultACLAccess\"}", "Missing/invalid actions array");
    OK(ds, "{\"command\":\"setDefaultACLAccess\",\"acls\":[{\"acltype\":\"publishClientSend\","
           "\"allow\":true},{\"acltype\":\"bogus\",\"allow\":true},{\"acltype\":\"subscribe\"}]}");
    OK(ds, "{\"command\":\"getDefaultACLAccess\"}");
    CHECK_STR(last_data, "{\"acls\":[{\"acltype\":\"publishClientSend\",\"allow\":true},{"
                         "\"acltype\":\"publishClientReceive\",\"allow\":true},{\"acltype\":"
                         "\"subscribe\",\"allow\":false},{\"acltype\":\"unsubscribe\",\"allow\":"
                         "true}]}");
    tern_dynsec_free(ds);
}

/* Role/group/priority evaluation order. */
static void test_acl_order(void)
{
    struct tern_dynsec *ds = fresh();
    static const char *setup[] = {
        /* low: allows t/#; high: denies t/secret at high ACL priority, allows t/secret/x */
        "{\"command\":\"createRole\",\"rolename\":\"low\",\"acls\":["
        "{\"acltype\":\"publishClientSend\",\"topic\":\"t/#\",\"allow\":true},"
        "{\"acltype\":\"publishClientReceive\",\"topic\":\"t/#\",\"allow\":false},"
        "{\"acltype\":\"subscribePattern\",\"topic\":\"t/#\",\"allow\":true},"
        "{\"acltype\":\"unsubscribePattern\",\"topic\":\"t/#\",\"allow\":false}]}",
        "{\"command\":\"createRole\",\"rolename\":\"high\",\"acls\":["
        "{\"acltype\":\"publishClientSend\",\"topic\":\"t/secret\",\"allow\":false,"
        "\"priority\":5},"
        "{\"acltype\":\"publishClientSend\",\"topic\":\"t/+\",\"allow\":true,\"priority\":1},"
        "{\"acltype\":\"subscribeLiteral\",\"topic\":\"t/+\",\"allow\":false},"
        "{\"acltype\":\"subscribePattern\",\"topic\":\"t/+\",\"allow\":true,\"priority\":9}]}",
        "{\"command\":\"createRole\",\"rolename\":\"grp\",\"acls\":["
        "{\"acltype\":\"publishClientSend\",\"topic\":\"g/#\",\"allow\":true},"
        "{\"acltype\":\"publishClientSend\",\"topic\":\"t/#\",\"allow\":false}]}",
        "{\"command\":\"createRole\",\"rolename\":\"grp2\",\"acls\":["
        "{\"acltype\":\"publishClientSend\",\"topic\":\"g/#\",\"allow\":false}]}",
        "{\"command\":\"createRole\",\"rolename\":\"anon\",\"acls\":["
        "{\"acltype\":\"publishClientSend\",\"topic\":\"pub/#\",\"allow\":true}]}",
        "{\"command\":\"createGroup\",\"groupname\":\"G1\",\"roles\":[{\"rolename\":\"grp\"}]}",
        "{\"command\":\"createGroup\",\"groupname\":\"G2\",\"roles\":[{\"rolename\":\"grp2\"}]}",
        "{\"command\":\"createGroup\",\"groupname\":\"anon\",\"roles\":[{\"rolename\":\"anon\"}]}",
        "{\"command\":\"setAnonymousGroup\",\"groupname\":\"anon\"}",
        "{\"command\":\"createClient\",\"username\":\"u\",\"roles\":[{\"rolename\":\"low\","
        "\"priority\":1},{\"rolename\":\"high\",\"priority\":2}],"
        "\"groups\":[{\"groupname\":\"G1\",\"priority\":1},{\"groupname\":\"G2\",\"priority\":2}]}",
        "{\"command\":\"createClient\",\"username\":\"g\",\"groups\":[{\"groupname\":\"G1\"}]}",
        "{\"command\":\"createClient\",\"username\":\"off\",\"roles\":[{\"rolename\":\"low\"}]}",
        "{\"command\":\"disableClient\",\"username\":\"off\"}",
    };
    for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
        OK(ds, setup[i]);
    }
    const enum tern_dynsec_access PS = TERN_DYNSEC_PUBLISH_SEND, PR = TERN_DYNSEC_PUBLISH_RECEIVE,
                                  SU = TERN_DYNSEC_SUBSCRIBE, UN = TERN_DYNSEC_UNSUBSCRIBE;
    static const struct {
        const char *user;
        enum tern_dynsec_access a;
        const char *topic;
        enum tern_dynsec_result want;
    } cases[] = {
        /* role "high" (priority 2) before "low" (1); within high, priority 5 before 1 */
        {"u", TERN_DYNSEC_PUBLISH_SEND, "t/secret", D},
        {"u", TERN_DYNSEC_PUBLISH_SEND, "t/open", A},
        {"u", TERN_DYNSEC_PUBLISH_SEND, "t/a/b", A}, /* high has no match: low allows t/# */
        {"u", TERN_DYNSEC_PUBLISH_SEND, "t", A},     /* t/# matches t */
        /* client roles before groups: group "grp" denies t/#, but the roles answered first */
        {"u", TERN_DYNSEC_PUBLISH_SEND, "t/x/y", A},
        /* groups by priority: G2 (2, denies g/#) before G1 (1, allows) */
        {"u", TERN_DYNSEC_PUBLISH_SEND, "g/1", D},
        {"g", TERN_DYNSEC_PUBLISH_SEND, "g/1", A},
        {"g", TERN_DYNSEC_PUBLISH_SEND, "t/1", D},
        /* nothing matches: default access */
        {"u", TERN_DYNSEC_PUBLISH_SEND, "other", D},
        {"u", TERN_DYNSEC_PUBLISH_RECEIVE, "other", A},
        {"u", TERN_DYNSEC_SUBSCRIBE, "other", D},
        {"u", TERN_DYNSEC_UNSUBSCRIBE, "other", A},
        {"u", TERN_DYNSEC_PUBLISH_RECEIVE, "t/x", D},
        {"u", TERN_DYNSEC_UNSUBSCRIBE, "t/x", D},
        /* subscribe: a role's literal ACLs come before its patterns whatever the priority */
        {"u", TERN_DYNSEC_SUBSCRIBE, "t/+", D},
        {"u", TERN_DYNSEC_SUBSCRIBE, "t/x", A},
        {"u", TERN_DYNSEC_SUBSCRIBE, "t/#", A}, /* high's t/+ cannot cover t/#; low's t/# can */
        {"u", TERN_DYNSEC_SUBSCRIBE, "$share/grp/t/x", A},
        {"u", TERN_DYNSEC_SUBSCRIBE, "#", D},
        /* anonymous clients: the anonymous group's roles, then the default */
        {NULL, TERN_DYNSEC_PUBLISH_SEND, "pub/x", A},
        {NULL, TERN_DYNSEC_PUBLISH_SEND, "t/x", D},
        {NULL, TERN_DYNSEC_PUBLISH_RECEIVE, "t/x", A},
        /* unknown user: another provider decides; disabled: denied */
        {"stranger", TERN_DYNSEC_PUBLISH_SEND, "pub/x", N},
        {"off", TERN_DYNSEC_PUBLISH_SEND, "t/x", D},
        {"off", TERN_DYNSEC_PUBLISH_RECEIVE, "x", D},
    };
    (void)PS;
    (void)PR;
    (void)SU;
    (void)UN;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum tern_dynsec_result got = chk(ds, cases[i].user, "cid", cases[i].a, cases[i].topic);
        if (got != cases[i].want) {
            fprintf(stderr, "  case %zu: user %s access %d topic %s: got %d want %d\n", i,
                    cases[i].user ? cases[i].user : "(anon)", (int)cases[i].a, cases[i].topic,
                    (int)got, (int)cases[i].want);
            tern_test_failed_checks++;
        }
    }
    /* Removing the allow makes the default apply at once. */
    OK(ds, "{\"command\":\"removeRoleACL\",\"rolename\":\"anon\",\"acltype\":"
           "\"publishClientSend\",\"topic\":\"pub/#\"}");
    CHECK_EQ(chk(ds, NULL, "x", TERN_DYNSEC_PUBLISH_SEND, "pub/x"), D);
    tern_dynsec_free(ds);
}

/* Wildcards of a subscription against subscribePattern, and $ topics. */
static void test_subscribe_patterns(void)
{
    struct tern_dynsec *ds = fresh();
    OK(ds, "{\"command\":\"createRole\",\"rolename\":\"r\",\"acls\":["
           "{\"acltype\":\"subscribePattern\",\"topic\":\"a/+\",\"allow\":true},"
           "{\"acltype\":\"subscribeLiteral\",\"topic\":\"l/+\",\"allow\":true},"
           "{\"acltype\":\"subscribePattern\",\"topic\":\"d/#\",\"allow\":true},"
           "{\"acltype\":\"subscribePattern\",\"topic\":\"d/no\",\"allow\":false,\"priority\":5},"
           "{\"acltype\":\"subscribePattern\",\"topic\":\"#\",\"allow\":true,\"priority\":-9},"
           "{\"acltype\":\"publishClientReceive\",\"topic\":\"#\",\"allow\":false}]}");
    OK(ds, "{\"command\":\"createClient\",\"username\":\"u\",\"roles\":[{\"rolename\":\"r\"}]}");
    OK(ds, "{\"command\":\"setDefaultACLAccess\",\"acls\":[{\"acltype\":\"publishClientReceive\","
           "\"allow\":true}]}");
    /* Matches what Mosquitto 2.0.11 answers to the same role (checked with its plugin). */
    static const struct {
        const char *topic;
        enum tern_dynsec_result want;
    } cases[] = {
        {"a/b", A},
        {"a/+", A},
        {"a/#", A /* by "#" (-9) */},
        {"l/+", A},
        {"l/x", A /* "#" */},
        {"d/x", A},
        {"d/no", D},
        {"d/+", A},
        {"d/#", A},
        {"$SYS/x", D /* "#" never covers a $ topic */},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum tern_dynsec_result got = chk(ds, "u", "c", TERN_DYNSEC_SUBSCRIBE, cases[i].topic);
        if (got != cases[i].want) {
            fprintf(stderr, "  subscribe %s: got %d want %d\n", cases[i].topic, (int)got,
                    (int)cases[i].want);
            tern_test_failed_checks++;
        }
    }
    /* Without the "#" catch-all, a/+ does not cover a/#. */
    OK(ds, "{\"command\":\"removeRoleACL\",\"rolename\":\"r\",\"acltype\":\"subscribePattern\","
           "\"topic\":\"#\"}");
    CHECK_EQ(chk(ds, "u", "c", TERN_DYNSEC_SUBSCRIBE, "a/#"), D);
    CHECK_EQ(chk(ds, "u", "c", TERN_DYNSEC_SUBSCRIBE, "l/x"), D);
    CHECK_EQ(chk(ds, "u", "c", TERN_DYNSEC_SUBSCRIBE, "#"), D);
    /* receive "#" deny does not match $SYS (the $ rule): the default (allow) applies */
    CHECK_EQ(chk(ds, "u", "c", TERN_DYNSEC_PUBLISH_RECEIVE, "$SYS/x"), A);
    CHECK_EQ(chk(ds, "u", "c", TERN_DYNSEC_PUBLISH_RECEIVE, "x"), D);
    tern_dynsec_free(ds);
}

static void test_substitution(void)
{
    struct tern_dynsec *ds = fresh();
    OK(ds, "{\"command\":\"createRole\",\"rolename\":\"r\",\"acls\":["
           "{\"acltype\":\"publishClientSend\",\"topic\":\"dev/%c/#\",\"allow\":true},"
           "{\"acltype\":\"publishClientSend\",\"topic\":\"usr/%u/out\",\"allow\":true},"
           "{\"acltype\":\"publishClientSend\",\"topic\":\"x%c/y\",\"allow\":true},"
           "{\"acltype\":\"subscribePattern\",\"topic\":\"dev/%c/#\",\"allow\":true},"
           "{\"acltype\":\"subscribeLiteral\",\"topic\":\"lit/%c\",\"allow\":true}]}");
    OK(ds, "{\"command\":\"createClient\",\"username\":\"ann\",\"roles\":[{\"rolename\":\"r\"}]}");
    OK(ds, "{\"command\":\"createClient\",\"username\":\"a+b\",\"roles\":[{\"rolename\":\"r\"}]}");
    static const struct {
        const char *user, *cid;
        enum tern_dynsec_access a;
        const char *topic;
        enum tern_dynsec_result want;
    } cases[] = {
        {"ann", "c1", TERN_DYNSEC_PUBLISH_SEND, "dev/c1/t", A},
        {"ann", "c1", TERN_DYNSEC_PUBLISH_SEND, "dev/c1", A},
        {"ann", "c1", TERN_DYNSEC_PUBLISH_SEND, "dev/c2/t", D},
        {"ann", "c1", TERN_DYNSEC_PUBLISH_SEND, "dev/%c/t", D}, /* the text itself: no */
        {"ann", "c1", TERN_DYNSEC_PUBLISH_SEND, "usr/ann/out", A},
        {"ann", "c1", TERN_DYNSEC_PUBLISH_SEND, "usr/bob/out", D},
        /* only a whole level is substituted */
        {"ann", "c1", TERN_DYNSEC_PUBLISH_SEND, "xc1/y", D},
        {"ann", "c1", TERN_DYNSEC_PUBLISH_SEND, "x%c/y", A},
        {"ann", "c1", TERN_DYNSEC_SUBSCRIBE, "dev/c1/#", A},
        {"ann", "c1", TERN_DYNSEC_SUBSCRIBE, "dev/+/#", D},
        {"ann", "c1", TERN_DYNSEC_SUBSCRIBE, "lit/c1", D}, /* literal ACLs never substitute */
        {"ann", "c1", TERN_DYNSEC_SUBSCRIBE, "lit/%c", A},
        /* an id holding a wildcard never matches a substituted level */
        {"ann", "+", TERN_DYNSEC_SUBSCRIBE, "dev/+/#", D},
        {"ann", "#", TERN_DYNSEC_SUBSCRIBE, "dev/#", D},
        {"a+b", "c", TERN_DYNSEC_PUBLISH_SEND, "usr/a+b/out", D},
        {"ann", "", TERN_DYNSEC_PUBLISH_SEND, "dev//t", D},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum tern_dynsec_result got =
            chk(ds, cases[i].user, cases[i].cid, cases[i].a, cases[i].topic);
        if (got != cases[i].want) {
            fprintf(stderr, "  case %zu (%s/%s %s): got %d want %d\n", i, cases[i].user,
                    cases[i].cid, cases[i].topic, (int)got, (int)cases[i].want);
            tern_test_failed_checks++;
        }
    }
    tern_dynsec_free(ds);
}

static void test_effects(void)
{
    struct tern_dynsec *ds = fresh();
    struct tern_dynsec_effects fx = {0};
    bool changed = false;
    char *r = request(ds,
                      "{\"commands\":[{\"command\":\"createRole\",\"rolename\":\"r\"},"
                      "{\"command\":\"createClient\",\"username\":\"u\"},"
                      "{\"command\":\"getClient\",\"username\":\"u\"}]}",
                      &fx, &changed);
    tern_free(r);
    CHECK(changed);
    CHECK_EQ(fx.n, 0);
    r = request(ds, "{\"commands\":[{\"command\":\"listRoles\"}]}", &fx, &changed);
    tern_free(r);
    CHECK(!changed);
    r = request(ds,
                "{\"commands\":[{\"command\":\"addClientRole\",\"username\":\"u\","
                "\"rolename\":\"r\"},{\"command\":\"disableClient\",\"username\":\"u\"},"
                "{\"command\":\"disableClient\",\"username\":\"u\"}]}",
                &fx, &changed);
    tern_free(r);
    CHECK(changed);
    CHECK_EQ(fx.n, 2);
    if (fx.n == 2) {
        CHECK_EQ(fx.v[0].kind, TERN_DYNSEC_RECHECK);
        CHECK_STR(fx.v[0].username, "u");
        CHECK_EQ(fx.v[1].kind, TERN_DYNSEC_KICK);
        CHECK_STR(fx.v[1].username, "u");
    }
    tern_dynsec_effects_fini(&fx);
    r = request(ds,
                "{\"commands\":[{\"command\":\"addRoleACL\",\"rolename\":\"r\",\"acltype\":"
                "\"publishClientSend\",\"topic\":\"a\"},{\"command\":\"deleteClient\","
                "\"username\":\"u\"},{\"command\":\"deleteClient\",\"username\":\"u\"}]}",
                &fx, &changed);
    tern_free(r);
    CHECK_EQ(fx.n, 2);
    if (fx.n == 2) {
        CHECK_EQ(fx.v[0].kind, TERN_DYNSEC_RECHECK);
        CHECK(fx.v[0].username == NULL);
        CHECK_EQ(fx.v[1].kind, TERN_DYNSEC_KICK);
    }
    tern_dynsec_effects_fini(&fx);
    /* A failed command changes nothing and has no effect. */
    r = request(ds, "{\"commands\":[{\"command\":\"disableClient\",\"username\":\"u\"}]}", &fx,
                &changed);
    tern_free(r);
    CHECK(!changed);
    CHECK_EQ(fx.n, 0);
    tern_dynsec_free(ds);
}

/* Written by `mosquitto_ctrl dynsec init f admin adminpw` (Mosquitto 2.0.11). */
static const char mosq_init[] =
    "{\n\t\"clients\":\t[{\n\t\t\t\"username\":\t\"admin\",\n\t\t\t\"textName\":\t\"Dynsec admin "
    "user\",\n\t\t\t\"password\":\t\"OMabkKcS88qJNMe2acZkDeHmfA/Ku4us9JIq2Mtpqidbeg1IQWXFoFRlWX4Sp6"
    "OXF7M8kHkGpu4QcA/Vr0Yzfw==\",\n\t\t\t\"salt\":\t\"AFKqIphU4ZSc6+Wt\",\n\t\t\t\"iterations\":"
    "\t101,\n\t\t\t\"roles\":\t[{\n\t\t\t\t\t\"rolename\":\t\"admin\"\n\t\t\t\t}]\n\t\t}],\n\t"
    "\"roles\":\t[{\n\t\t\t\"rolename\":\t\"admin\",\n\t\t\t\"acls\":\t[{\n\t\t\t\t\t\"acltype\":"
    "\t\"publishClientSend\",\n\t\t\t\t\t\"topic\":\t\"$CONTROL/dynamic-security/#\",\n\t\t\t\t\t"
    "\"allow\":\ttrue\n\t\t\t\t}, {\n\t\t\t\t\t\"acltype\":\t\"publishClientReceive\",\n\t\t\t\t\t"
    "\"topic\":\t\"$CONTROL/dynamic-security/#\",\n\t\t\t\t\t\"allow\":\ttrue\n\t\t\t\t}, {\n\t\t\t"
    "\t\t\"acltype\":\t\"subscribePattern\",\n\t\t\t\t\t\"topic\":\t\"$CONTROL/dynamic-security/#"
    "\",\n\t\t\t\t\t\"allow\":\ttrue\n\t\t\t\t}, {\n\t\t\t\t\t\"acltype\":\t\"publishClientReceive"
    "\",\n\t\t\t\t\t\"topic\":\t\"$SYS/#\",\n\t\t\t\t\t\"allow\":\ttrue\n\t\t\t\t}, {\n\t\t\t\t\t"
    "\"acltype\":\t\"subscribePattern\",\n\t\t\t\t\t\"topic\":\t\"$SYS/#\",\n\t\t\t\t\t\"allow\":"
    "\ttrue\n\t\t\t\t}, {\n\t\t\t\t\t\"acltype\":\t\"publishClientReceive\",\n\t\t\t\t\t\"topic\":"
    "\t\"#\",\n\t\t\t\t\t\"allow\":\ttrue\n\t\t\t\t}, {\n\t\t\t\t\t\"acltype\":\t\"subscribePattern"
    "\",\n\t\t\t\t\t\"topic\":\t\"#\",\n\t\t\t\t\t\"allow\":\ttrue\n\t\t\t\t}, {\n\t\t\t\t\t"
    "\"acltype\":\t\"unsubscribePattern\",\n\t\t\t\t\t\"topic\":\t\"#\",\n\t\t\t\t\t\"allow\":\t"
    "true\n\t\t\t\t}]\n\t\t}],\n\t\"defaultACLAccess\":\t{\n\t\t\"publishClientSend\":\tfalse,\n\t"
    "\t\"publishClientReceive\":\ttrue,\n\t\t\"subscribe\":\tfalse,\n\t\t\"unsubscribe\":\ttrue\n\t"
    "}\n}\n";

/* Saved by Mosquitto 2.0.11's plugin after commands (u1's password is "p1"). */
static const char mosq_saved[] =
    "{\"defaultACLAccess\":{\"publishClientSend\":false,\"publishClientReceive\":true,"
    "\"subscribe\":false,\"unsubscribe\":true},\"clients\":[{\"username\":\"admin\",\"textname\":"
    "\"Dynsec admin user\",\"roles\":[{\"rolename\":\"admin\"}],\"password\":\"OMabkKcS88qJNMe2ac"
    "ZkDeHmfA/Ku4us9JIq2Mtpqidbeg1IQWXFoFRlWX4Sp6OXF7M8kHkGpu4QcA/Vr0Yzfw==\",\"salt\":\"AFKqIphU"
    "4ZSc6+Wt\",\"iterations\":101},{\"username\":\"u1\",\"clientid\":\"c1\",\"textname\":\"T\","
    "\"textdescription\":\"D\",\"disabled\":true,\"roles\":[{\"rolename\":\"r1\",\"priority\":3},"
    "{\"rolename\":\"admin\"}],\"password\":\"wEHlRFazVqgnIR+h6Hv3RkQ3GTiRraJCKp4w3/fPlRoyh7bsQ0HMr"
    "Yp75AlflMEXD1SkzKtYNdyOZuT+xsC1tQ==\",\"salt\":\"87VWUZz9FH94ygb4\",\"iterations\":101}],"
    "\"groups\":[{\"groupname\":\"g1\",\"textname\":\"GT\",\"textdescription\":\"GD\",\"roles\":"
    "[{\"rolename\":\"r1\",\"priority\":2}],\"clients\":[{\"username\":\"u1\",\"priority\":4}]}],"
    "\"anonymousGroup\":\"g1\",\"roles\":[{\"rolename\":\"admin\",\"acls\":[{\"acltype\":"
    "\"publishClientSend\",\"topic\":\"$CONTROL/dynamic-security/#\",\"priority\":0,\"allow\":"
    "true}]},{\"rolename\":\"r1\",\"textname\":\"RT\",\"textdescription\":\"RD\",\"acls\":[{"
    "\"acltype\":\"publishClientSend\",\"topic\":\"a/#\",\"priority\":0,\"allow\":false},{"
    "\"acltype\":\"subscribePattern\",\"topic\":\"a/#\",\"priority\":1,\"allow\":true}]}]}";

static void test_load_mosquitto(void)
{
    char err[256] = "";
    struct tern_dynsec *ds = NULL;
    CHECK_ERR(
        tern_dynsec_load_string(&ds, mosq_init, strlen(mosq_init), "init.json", err, sizeof err),
        TERN_OK);
    if (ds == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_ERR(auth(ds, "admin", "any", "adminpw"), TERN_OK);
    CHECK_ERR(auth(ds, "admin", "any", "adminpx"), TERN_EDENIED);
    CHECK_EQ(chk(ds, "admin", "c", TERN_DYNSEC_PUBLISH_SEND, TERN_DYNSEC_TOPIC), A);
    CHECK_EQ(chk(ds, "admin", "c", TERN_DYNSEC_SUBSCRIBE, TERN_DYNSEC_RESPONSE_TOPIC), A);
    CHECK_EQ(chk(ds, "admin", "c", TERN_DYNSEC_PUBLISH_SEND, "a/b"), D);
    CHECK_EQ(chk(ds, "admin", "c", TERN_DYNSEC_SUBSCRIBE, "#"), A);
    OK(ds, "{\"command\":\"getClient\",\"username\":\"admin\"}");
    CHECK_STR(last_data, "{\"client\":{\"username\":\"admin\",\"textname\":\"Dynsec admin user\","
                         "\"roles\":[{\"rolename\":\"admin\"}],\"groups\":[]}}");
    tern_dynsec_free(ds);

    ds = NULL;
    CHECK_ERR(
        tern_dynsec_load_string(&ds, mosq_saved, strlen(mosq_saved), "saved.json", err, sizeof err),
        TERN_OK);
    if (ds == NULL) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_ERR(auth(ds, "u1", "c1", "p1"), TERN_EDENIED); /* disabled */
    OK(ds, "{\"command\":\"enableClient\",\"username\":\"u1\"}");
    CHECK_ERR(auth(ds, "u1", "c1", "p1"), TERN_OK);
    CHECK_ERR(auth(ds, "u1", "c2", "p1"), TERN_EDENIED);
    OK(ds, "{\"command\":\"getClient\",\"username\":\"u1\"}");
    CHECK_STR(last_data, "{\"client\":{\"username\":\"u1\",\"clientid\":\"c1\",\"textname\":\"T\","
                         "\"textdescription\":\"D\",\"roles\":[{\"rolename\":\"r1\",\"priority\":3}"
                         ",{\"rolename\":\"admin\"}],\"groups\":[{\"groupname\":\"g1\",\"priority\""
                         ":4}]}}");
    OK(ds, "{\"command\":\"getAnonymousGroup\"}");
    CHECK_STR(last_data, "{\"group\":{\"groupname\":\"g1\"}}");
    /* r1 (priority 3) denies publishing a/#; anonymous clients get r1 through g1 */
    CHECK_EQ(chk(ds, "u1", "c1", TERN_DYNSEC_PUBLISH_SEND, "a/x"), D);
    CHECK_EQ(chk(ds, NULL, "c", TERN_DYNSEC_SUBSCRIBE, "a/x"), A);
    tern_dynsec_free(ds);
}

static void test_load_errors(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{", "f.json: invalid JSON near line 1"},
        {"[]", "f.json: not a JSON object"},
        {"{\"clients\":{}}", "f.json: \"clients\" is not an array"},
        {"{\"clients\":[{}]}", "f.json: client without a valid \"username\""},
        {"{\"clients\":[{\"username\":\"a\"},{\"username\":\"a\"}]}",
         "f.json: client \"a\" appears twice"},
        {"{\"clients\":[{\"username\":\"a\",\"roles\":[{\"rolename\":\"r\"}]}]}",
         "f.json: client \"a\": unknown rolename \"r\""},
        {"{\"clients\":[{\"username\":\"a\",\"password\":\"x\"}]}",
         "f.json: client \"a\": password needs \"password\", \"salt\" and \"iterations\""},
        {"{\"clients\":[{\"username\":\"a\",\"password\":\"x!\",\"salt\":\"AAAA\","
         "\"iterations\":5}]}",
         "f.json: client \"a\": password or salt is not base64"},
        {"{\"roles\":[{\"rolename\":\"r\",\"acls\":[{\"acltype\":\"x\",\"topic\":\"a\"}]}]}",
         "f.json: role \"r\": Unknown acltype"},
        {"{\"roles\":[{\"rolename\":\"r\",\"acls\":[{\"acltype\":\"subscribePattern\","
         "\"topic\":\"a/#/b\"}]}]}",
         "f.json: role \"r\": Invalid ACL topic"},
        {"{\"groups\":[{\"groupname\":\"g\",\"clients\":[{\"username\":\"nobody\"}]}]}",
         "f.json: group \"g\": unknown client \"nobody\""},
        {"{\"anonymousGroup\":\"g\"}", "f.json: anonymousGroup \"g\" is not a group"},
        {"{\"defaultACLAccess\":[]}", "f.json: \"defaultACLAccess\" is not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        struct tern_dynsec *ds = NULL;
        int rc = tern_dynsec_load_string(&ds, cases[i].text, strlen(cases[i].text), "f.json", err,
                                         sizeof err);
        CHECK_ERR(rc, TERN_ECONFIG);
        CHECK(ds == NULL);
        CHECK_STR(err, cases[i].want);
    }
    char err[256] = "";
    struct tern_dynsec *ds = NULL;
    CHECK_ERR(tern_dynsec_load_file(&ds, "/nonexistent/dynsec.json", err, sizeof err),
              TERN_ECONFIG);
    CHECK(strstr(err, "/nonexistent/dynsec.json") != NULL);
    /* An empty object is an empty state with the defaults. */
    CHECK_ERR(tern_dynsec_load_string(&ds, "{}", 2, "f", err, sizeof err), TERN_OK);
    CHECK_EQ(chk(ds, NULL, "c", TERN_DYNSEC_PUBLISH_RECEIVE, "x"), A);
    tern_dynsec_free(ds);
}

static struct tern_dynsec *populated(void)
{
    struct tern_dynsec *ds = fresh();
    static const char *setup[] = {
        "{\"command\":\"createRole\",\"rolename\":\"r1\",\"textname\":\"n\",\"textdescription\":"
        "\"d\",\"acls\":[{\"acltype\":\"publishClientSend\",\"topic\":\"a/%c/#\",\"allow\":true,"
        "\"priority\":3},{\"acltype\":\"subscribeLiteral\",\"topic\":\"l\",\"allow\":false}]}",
        "{\"command\":\"createRole\",\"rolename\":\"r2\"}",
        "{\"command\":\"createGroup\",\"groupname\":\"g1\",\"textname\":\"G\","
        "\"roles\":[{\"rolename\":\"r2\",\"priority\":7}]}",
        "{\"command\":\"createGroup\",\"groupname\":\"g2\"}",
        "{\"command\":\"createClient\",\"username\":\"u1\",\"password\":\"pw\",\"clientid\":\"c\","
        "\"textname\":\"t\",\"textdescription\":\"td\",\"roles\":[{\"rolename\":\"r1\"},"
        "{\"rolename\":\"r2\",\"priority\":2}],\"groups\":[{\"groupname\":\"g1\",\"priority\":1},"
        "{\"groupname\":\"g2\"}]}",
        "{\"command\":\"createClient\",\"username\":\"ü2\"}",
        "{\"command\":\"disableClient\",\"username\":\"ü2\"}",
        "{\"command\":\"setAnonymousGroup\",\"groupname\":\"g2\"}",
        "{\"command\":\"setDefaultACLAccess\",\"acls\":[{\"acltype\":\"unsubscribe\","
        "\"allow\":false}]}",
    };
    for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
        OK(ds, setup[i]);
    }
    return ds;
}

static void test_round_trip(void)
{
    struct tern_dynsec *ds = populated();
    char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    CHECK_ERR(tern_dynsec_to_json(ds, &a, &al), TERN_OK);
    char err[256] = "";
    struct tern_dynsec *ds2 = NULL;
    CHECK_ERR(tern_dynsec_load_string(&ds2, a, al, "rt", err, sizeof err), TERN_OK);
    if (ds2 != NULL) {
        CHECK_ERR(tern_dynsec_to_json(ds2, &b, &bl), TERN_OK);
        CHECK_STR(b, a);
        CHECK_ERR(auth(ds2, "u1", "c", "pw"), TERN_OK);
        CHECK_EQ(chk(ds2, "u1", "c", TERN_DYNSEC_PUBLISH_SEND, "a/c/x"), A);
        CHECK_EQ(chk(ds2, "u1", "c", TERN_DYNSEC_UNSUBSCRIBE, "q"), D);
    }
    /* The file holds Mosquitto's field names. */
    CHECK(strstr(a, "\"iterations\":\t1000") != NULL);
    CHECK(strstr(a, "\"salt\":") != NULL);
    CHECK(strstr(a, "\"anonymousGroup\":\t\"g2\"") != NULL);
    tern_free(a);
    tern_free(b);
    tern_dynsec_free(ds2);
    tern_dynsec_free(ds);
}

static void test_save_and_init(void)
{
    char dir[] = "/tmp/tern-dynsec-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[300], tmp[310];
    snprintf(path, sizeof path, "%s/ds.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct tern_dynsec *ds = populated();
    char err[256] = "";
    CHECK_ERR(tern_dynsec_save_file(ds, path, err, sizeof err), TERN_OK);
    CHECK(access(tmp, F_OK) != 0); /* renamed away */
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    struct tern_dynsec *ds2 = NULL;
    CHECK_ERR(tern_dynsec_load_file(&ds2, path, err, sizeof err), TERN_OK);
    if (ds2 != NULL) {
        CHECK_ERR(auth(ds2, "u1", "c", "pw"), TERN_OK);
    }
    tern_dynsec_free(ds2);
    /* Overwrite works; a directory that cannot be written names the file. */
    CHECK_ERR(tern_dynsec_save_file(ds, path, err, sizeof err), TERN_OK);
    CHECK_ERR(tern_dynsec_save_file(ds, "/nonexistent-dir/x.json", err, sizeof err), TERN_EIO);
    CHECK(strstr(err, "/nonexistent-dir/x.json") != NULL);
    tern_dynsec_free(ds);
    unlink(path);

    /* init: admin can log in and manage; refuses to overwrite. */
    CHECK_ERR(tern_dynsec_init_file(path, "boss", "secret", 1000, err, sizeof err), TERN_OK);
    CHECK_ERR(tern_dynsec_init_file(path, "boss", "secret", 1000, err, sizeof err), TERN_EEXIST);
    CHECK_ERR(tern_dynsec_init_file(tmp, "", "secret", 1000, err, sizeof err), TERN_EINVAL);
    CHECK_ERR(tern_dynsec_init_file(tmp, "boss", "", 1000, err, sizeof err), TERN_EINVAL);
    ds = NULL;
    CHECK_ERR(tern_dynsec_load_file(&ds, path, err, sizeof err), TERN_OK);
    if (ds != NULL) {
        CHECK_ERR(auth(ds, "boss", "any", "secret"), TERN_OK);
        CHECK_EQ(chk(ds, "boss", "x", TERN_DYNSEC_PUBLISH_SEND, TERN_DYNSEC_TOPIC), A);
        CHECK_EQ(chk(ds, "boss", "x", TERN_DYNSEC_SUBSCRIBE, TERN_DYNSEC_RESPONSE_TOPIC), A);
        CHECK_EQ(chk(ds, "boss", "x", TERN_DYNSEC_PUBLISH_SEND, "app/x"), D);
        CHECK_EQ(chk(ds, "boss", "x", TERN_DYNSEC_PUBLISH_RECEIVE, "$SYS/broker/uptime"), A);
    }
    tern_dynsec_free(ds);
    unlink(path);
    rmdir(dir);
}

/* Every allocation of a command sequence fails once: a command that reports "Internal error"
 * (or a request that fails with ENOMEM before running) leaves the state as it was. */
static void test_alloc_failures(void)
{
    static const char *steps[] = {
        "{\"command\":\"createClient\",\"username\":\"n\",\"password\":\"p\",\"clientid\":\"c\","
        "\"textname\":\"t\",\"roles\":[{\"rolename\":\"r1\"}],\"groups\":[{\"groupname\":\"g1\"}]}",
        "{\"command\":\"modifyClient\",\"username\":\"u1\",\"password\":\"q\",\"clientid\":\"d\","
        "\"textname\":\"x\",\"roles\":[{\"rolename\":\"r2\"}],\"groups\":[{\"groupname\":\"g2\"}]}",
        "{\"command\":\"modifyGroup\",\"groupname\":\"g1\",\"textname\":\"x\",\"roles\":[],"
        "\"clients\":[{\"username\":\"u1\",\"priority\":4}]}",
        "{\"command\":\"modifyRole\",\"rolename\":\"r1\",\"textname\":\"x\",\"acls\":[{\"acltype\":"
        "\"publishClientReceive\",\"topic\":\"z/#\",\"allow\":true}]}",
        "{\"command\":\"addRoleACL\",\"rolename\":\"r2\",\"acltype\":\"publishClientSend\","
        "\"topic\":\"q\",\"allow\":true}",
        "{\"command\":\"addClientRole\",\"username\":\"u1\",\"rolename\":\"r2\",\"priority\":5}",
        "{\"command\":\"addGroupClient\",\"groupname\":\"g2\",\"username\":\"u1\"}",
        "{\"command\":\"removeGroupClient\",\"groupname\":\"g1\",\"username\":\"u1\"}",
        "{\"command\":\"setClientPassword\",\"username\":\"u1\",\"password\":\"z\"}",
        "{\"command\":\"setClientId\",\"username\":\"u1\",\"clientid\":\"z\"}",
        "{\"command\":\"disableClient\",\"username\":\"u1\"}",
        "{\"command\":\"createGroup\",\"groupname\":\"g9\",\"roles\":[{\"rolename\":\"r1\"}]}",
        "{\"command\":\"createRole\",\"rolename\":\"r9\",\"acls\":[{\"acltype\":"
        "\"subscribeLiteral\","
        "\"topic\":\"x\"}]}",
        "{\"command\":\"deleteRole\",\"rolename\":\"r1\"}",
        "{\"command\":\"deleteGroup\",\"groupname\":\"g1\"}",
        "{\"command\":\"deleteClient\",\"username\":\"u1\"}",
        "{\"command\":\"listClients\",\"verbose\":true}",
        "{\"command\":\"getGroup\",\"groupname\":\"g1\"}",
    };
    int completed = 0;
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        char req[2048];
        snprintf(req, sizeof req, "{\"commands\":[%s]}", steps[s]);
        for (uint64_t n = 1; n < 400; n++) {
            struct tern_dynsec *ds = populated();
            char *before = NULL, *after = NULL;
            size_t bl = 0, al = 0;
            CHECK_ERR(tern_dynsec_to_json(ds, &before, &bl), TERN_OK);
            struct tern_dynsec_effects fx = {0};
            char *resp = NULL;
            size_t rl = 0;
            bool changed = false;
            tern_alloc_fail_after(n);
            int rc = tern_dynsec_command(ds, req, strlen(req), &resp, &rl, &fx, &changed);
            uint64_t failed_before = tern_alloc_failed_count();
            tern_alloc_fail_after(0);
            (void)failed_before;
            CHECK(rc == TERN_OK || rc == TERN_ENOMEM);
            CHECK_ERR(tern_dynsec_to_json(ds, &after, &al), TERN_OK);
            bool internal = resp != NULL && strstr(resp, "Internal error") != NULL;
            bool invalid = resp != NULL && strstr(resp, "Payload not valid JSON") != NULL;
            if (internal || invalid) {
                CHECK(!changed);
                CHECK_STR(after, before);
                CHECK_EQ(fx.n, 0);
            }
            if (!changed && after != NULL && before != NULL) {
                CHECK_STR(after, before);
            }
            bool done = rc == TERN_OK && !internal && !invalid;
            tern_free(resp);
            tern_free(before);
            tern_free(after);
            tern_dynsec_effects_fini(&fx);
            tern_dynsec_free(ds);
            if (done) {
                completed++;
                break;
            }
        }
    }
    CHECK_EQ(completed, (int)(sizeof steps / sizeof steps[0]));
    /* Loading under allocation failure: ENOMEM or a complete state, never a leak. */
    int ok = 0;
    for (uint64_t n = 1; n < 300; n++) {
        struct tern_dynsec *ds = NULL;
        tern_alloc_fail_after(n);
        int rc = tern_dynsec_load_string(&ds, mosq_saved, strlen(mosq_saved), "f", NULL, 0);
        tern_alloc_fail_after(0);
        CHECK(rc == TERN_OK || rc == TERN_ENOMEM || rc == TERN_ECONFIG);
        CHECK((rc == TERN_OK) == (ds != NULL));
        ok += rc == TERN_OK;
        tern_dynsec_free(ds);
    }
    CHECK(ok > 0);
}

static void cleanup(void)
{
    tern_free(last_data);
    last_data = NULL;
}

static void test_cleanup(void)
{
    cleanup();
}

static const struct tern_test tests[] = {
    {"request_errors", test_request_errors},
    {"client_commands", test_client_commands},
    {"group_commands", test_group_commands},
    {"role_commands", test_role_commands},
    {"acl_order", test_acl_order},
    {"subscribe_patterns", test_subscribe_patterns},
    {"substitution", test_substitution},
    {"effects", test_effects},
    {"load_mosquitto", test_load_mosquitto},
    {"load_errors", test_load_errors},
    {"round_trip", test_round_trip},
    {"save_and_init", test_save_and_init},
    {"alloc_failures", test_alloc_failures},
    {"cleanup", test_cleanup},
    {NULL, NULL},
};

TERN_TEST_MAIN("dynsec", tests)
