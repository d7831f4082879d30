/* SPDX-License-Identifier: MIT */
/*
 * Firmware update: a binary image in numbered QoS 1 chunks with a SHA-256 manifest.
 *
 *   firmware_update device URL ID OUTFILE  the device: subscribes to devices/ID/firmware/#,
 *                                          takes the manifest ("size=N chunks=K sha256=HEX"),
 *                                          places each chunk devices/ID/firmware/chunk/I at
 *                                          I * 4096 (in any order, duplicates harmless), checks
 *                                          the SHA-256 of the whole image, writes OUTFILE, and
 *                                          reports "ok sha256=HEX" or "fail: why" on
 *                                          devices/ID/firmware/result
 *   firmware_update server URL ID IMAGE    the update server: publishes the manifest and the
 *                                          chunks, waits for the device's report, prints it;
 *                                          exit status 0 only for "ok"
 *
 * The device prints "ready" once subscribed. Payloads are binary throughout: lengths come from
 * the messages, never from strlen.
 */
#include <tern/client.h>
#include <tern/error.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK     4096u
#define MAX_IMAGE (64u * 1024u * 1024u)

static struct tern_client *start(const char *url, const char *client_id)
{
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.url = url;
    o.client_id = client_id;
    struct tern_client *c = NULL;
    uint8_t reason = 0;
    int rc = tern_client_new(&o, &c);
    if (rc == TERN_OK && (rc = tern_client_loop_start(c)) == TERN_OK) {
        rc = tern_client_connect_wait(c, 5000, &reason);
    }
    if (rc != TERN_OK) {
        fprintf(stderr, "firmware_update: cannot connect to %s: %s (reason 0x%02x)\n", url,
                tern_strerror(rc), reason);
        tern_client_free(c);
        return NULL;
    }
    return c;
}

static void sha256_hex(const uint8_t *data, size_t len, char out[65])
{
    uint8_t d[32];
    unsigned dl = 0;
    EVP_Digest(data, len, d, &dl, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

static int subscribe1(struct tern_client *c, const char *filter)
{
    const char *filters[] = {filter};
    const uint8_t options[] = {TERN_SUB_QOS(1)};
    return tern_client_subscribe_wait(c, filters, options, 1, NULL, 0, 5000, NULL);
}

/* ---- device ------------------------------------------------------------------------------ */

struct image {
    uint8_t *data;
    size_t size, chunks, received;
    bool *have;
    char sha[65];
};

static const char *take_manifest(struct image *im, const struct tern_message *m)
{
    char text[200];
    unsigned long size = 0, chunks = 0;
    snprintf(text, sizeof text, "%.*s", (int)(m->payload_len < 199 ? m->payload_len : 199),
             (const char *)m->payload);
    if (sscanf(text, "size=%lu chunks=%lu sha256=%64s", &size, &chunks, im->sha) != 3 ||
        size > MAX_IMAGE || chunks != (size + CHUNK - 1) / CHUNK) {
        return "bad manifest";
    }
    im->size = size;
    im->chunks = chunks;
    im->data = malloc(size ? size : 1);
    im->have = calloc(chunks ? chunks : 1, sizeof *im->have);
    return im->data && im->have ? NULL : "out of memory";
}

static const char *take_chunk(struct image *im, const struct tern_message *m, const char *prefix)
{
    char *end = NULL;
    unsigned long i = strtoul(m->topic + strlen(prefix), &end, 10);
    if (im->data == NULL) {
        return "chunk before manifest";
    }
    if (end == NULL || *end != '\0' || i >= im->chunks) {
        return "chunk number out of range";
    }
    size_t want = i + 1 == im->chunks ? im->size - i * CHUNK : CHUNK;
    if (m->payload_len != want) {
        return "chunk of the wrong size";
    }
    memcpy(im->data + i * CHUNK, m->payload, want);
    if (!im->have[i]) {
        im->have[i] = true; /* a QoS 1 duplicate is harmless */
        im->received++;
    }
    return NULL;
}

static int run_device(const char *url, const char *id, const char *outfile)
{
    char cid[96], filter[160], prefix[160], manifest[160], result[160];
    snprintf(cid, sizeof cid, "device-%s", id);
    snprintf(filter, sizeof filter, "devices/%s/firmware/#", id);
    snprintf(prefix, sizeof prefix, "devices/%s/firmware/chunk/", id);
    snprintf(manifest, sizeof manifest, "devices/%s/firmware/manifest", id);
    snprintf(result, sizeof result, "devices/%s/firmware/result", id);
    struct tern_client *c = start(url, cid);
    if (c == NULL || subscribe1(c, filter) != TERN_OK) {
        tern_client_free(c);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    struct image im = {0};
    const char *fail = NULL;
    int rc = TERN_OK;
    while (fail == NULL && (im.data == NULL || im.received < im.chunks)) {
        struct tern_message *m = NULL;
        if ((rc = tern_client_receive(c, 30000, &m)) != TERN_OK) {
            fail = "timed out waiting for the image";
            break;
        }
        if (strcmp(m->topic, manifest) == 0) {
            fail = take_manifest(&im, m);
        } else if (strncmp(m->topic, prefix, strlen(prefix)) == 0) {
            fail = take_chunk(&im, m, prefix);
        }
        tern_message_free(m);
    }
    char got[65] = "";
    if (fail == NULL) {
        sha256_hex(im.data, im.size, got);
        if (strcmp(got, im.sha) != 0) {
            fail = "SHA-256 mismatch";
        }
    }
    if (fail == NULL) {
        FILE *f = fopen(outfile, "wb");
        if (f == NULL || fwrite(im.data, 1, im.size, f) != im.size || fclose(f) != 0) {
            fail = "cannot write the image";
        }
    }
    char report[200];
    if (fail == NULL) {
        snprintf(report, sizeof report, "ok sha256=%s", got);
    } else {
        snprintf(report, sizeof report, "fail: %s", fail);
    }
    printf("%s\n", report);
    rc = tern_client_publish_wait(c, result, report, strlen(report), 1, false, NULL, 0, 5000, NULL);
    tern_client_disconnect_wait(c, 0, NULL, 0, 2000);
    tern_client_free(c);
    free(im.data);
    free(im.have);
    return fail == NULL && rc == TERN_OK ? 0 : 1;
}

/* ---- server ------------------------------------------------------------------------------ */

static uint8_t *read_image(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(MAX_IMAGE);
    size_t n = f && buf ? fread(buf, 1, MAX_IMAGE, f) : 0;
    bool ok = f && buf && !ferror(f) && feof(f);
    if (f) {
        fclose(f);
    }
    if (!ok) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int run_server(const char *url, const char *id, const char *path)
{
    size_t size = 0;
    uint8_t *img = read_image(path, &size);
    if (img == NULL) {
        fprintf(stderr, "firmware_update: cannot read %s (or larger than 64 MiB)\n", path);
        return 1;
    }
    char cid[96], topic[200], result[160];
    snprintf(cid, sizeof cid, "fw-server-%s", id);
    snprintf(result, sizeof result, "devices/%s/firmware/result", id);
    struct tern_client *c = start(url, cid);
    if (c == NULL || subscribe1(c, result) != TERN_OK) {
        tern_client_free(c);
        free(img);
        return 1;
    }
    char sha[65], manifest[200];
    sha256_hex(img, size, sha);
    size_t chunks = (size + CHUNK - 1) / CHUNK;
    snprintf(manifest, sizeof manifest, "size=%zu chunks=%zu sha256=%s", size, chunks, sha);
    snprintf(topic, sizeof topic, "devices/%s/firmware/manifest", id);
    int rc = tern_client_publish_wait(c, topic, manifest, strlen(manifest), 1, false, NULL, 0, 5000,
                                      NULL);
    for (size_t i = 0; rc == TERN_OK && i < chunks; i++) {
        size_t n = i + 1 == chunks ? size - i * CHUNK : CHUNK;
        snprintf(topic, sizeof topic, "devices/%s/firmware/chunk/%zu", id, i);
        rc = tern_client_publish_wait(c, topic, img + i * CHUNK, n, 1, false, NULL, 0, 5000, NULL);
    }
    int status = 1;
    struct tern_message *m = NULL;
    if (rc == TERN_OK && (rc = tern_client_receive(c, 30000, &m)) == TERN_OK) {
        printf("device %s: %.*s\n", id, (int)m->payload_len, (const char *)m->payload);
        status = m->payload_len >= 3 && memcmp(m->payload, "ok ", 3) == 0 ? 0 : 1;
        tern_message_free(m);
    } else {
        fprintf(stderr, "firmware_update: %s\n", tern_strerror(rc));
    }
    tern_client_disconnect_wait(c, 0, NULL, 0, 2000);
    tern_client_free(c);
    free(img);
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "device") == 0) {
        return run_device(argv[2], argv[3], argv[4]);
    }
    if (argc == 5 && strcmp(argv[1], "server") == 0) {
        return run_server(argv[2], argv[3], argv[4]);
    }
    fprintf(stderr, "usage: firmware_update device URL ID OUTFILE | "
                    "firmware_update server URL ID IMAGE\n");
    return 2;
}
