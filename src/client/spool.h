/* SPDX-License-Identifier: MIT */
/*
 * libtern's optional on-disk store of in-flight QoS 1/2 flows (the "spool"), so a client
 * process that crashed or was killed finishes its flows when it starts again with the same
 * store directory and client id.
 *
 * Layout: <dir>/<client id>/ (the id with bytes outside [A-Za-z0-9._-] written as %XX, and a
 * leading '.' escaped too), mode 0700 (a new directory is made durable by fsyncing its
 * parent), holding
 *   out-NNNNN   one outgoing QoS 1/2 message with packet id NNNNN (a record, below)
 *   rel-NNNNN   marker: PUBREC for that message arrived (PUBREL is what remains to send)
 *   in-NNNNN    marker: an incoming QoS 2 message NNNNN was acknowledged with PUBREC and
 *               waits for PUBREL (it must not be delivered again)
 * A message file is written to out-NNNNN.tmp, fsync'd, renamed into place and the directory
 * fsync'd before tern__spool_put returns, so after a crash a message file is either whole or
 * absent; leftover *.tmp files are removed when the spool is opened. Markers are created and
 * removed with the directory fsync'd after each change. On completion the marker goes before
 * the message file, so a crash in between leaves a message that is resent as a PUBLISH with
 * DUP, which a broker answers with PUBREC again: still exactly once.
 *
 * Record (big-endian): "TSPL" | version 1 | qos | flags (bit 0 retain) | 0 | packet id u16 |
 * sequence u64 | topic length u16 | properties length u32 | payload length u32 | topic |
 * properties | payload | FNV-1a 64 of every byte before it. The sequence orders messages as
 * they were published. tern__spool_record_parse is the only code that reads these bytes.
 */
#ifndef TERN_CLIENT_SPOOL_H
#define TERN_CLIENT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TERN__SPOOL_HEADER  28
#define TERN__SPOOL_TRAILER 8
/* Largest record accepted: an MQTT packet cannot be larger. */
#define TERN__SPOOL_MAX_RECORD ((size_t)268435455u + TERN__SPOOL_HEADER + TERN__SPOOL_TRAILER)

/* One outgoing message; views into the record's bytes (or the caller's, for encode). */
struct tern__spool_rec {
    uint64_t seq;
    uint16_t pid;
    uint8_t qos; /* 1 or 2 */
    bool retain;
    bool released; /* set by tern__spool_load when rel-NNNNN exists */
    const uint8_t *topic;
    size_t topic_len;
    const uint8_t *props;
    size_t props_len;
    const uint8_t *payload;
    size_t payload_len;
    void *owned; /* loaded records: the buffer the views point into, else NULL */
};

/*
 * Parse one record from buf[0..len) (exactly one, nothing after it). Views point into buf.
 * Returns TERN_OK or TERN_ECORRUPT (bad magic, version, QoS, packet id 0, lengths that do not
 * add up, or a checksum mismatch).
 */
int tern__spool_record_parse(const uint8_t *buf, size_t len, struct tern__spool_rec *out);

/* Size of the encoded record for `r`. */
size_t tern__spool_record_size(const struct tern__spool_rec *r);

/* Encode `r` into out[0..tern__spool_record_size(r)). */
void tern__spool_record_encode(const struct tern__spool_rec *r, uint8_t *out);

struct tern__spool;

/*
 * Open (creating as needed) the spool of `client_id` under `dir`. Both strings are borrowed.
 * On failure `err` (errlen bytes) names the path and the reason. Returns TERN_OK with *out
 * set, TERN_EINVAL (empty client id, path too long), TERN_ESTORE (a directory cannot be made
 * or opened), TERN_ENOMEM.
 */
int tern__spool_open(const char *dir, const char *client_id, struct tern__spool **out, char *err,
                     size_t errlen);

/* Close; the files stay. NULL is a no-op. */
void tern__spool_close(struct tern__spool *s);

/*
 * Everything stored: *recs (returned: free with tern__spool_free_recs) holds *nrecs messages
 * sorted by sequence, each owning its bytes; in_ids[] (caller's, 65536 entries of bool) is set
 * for every incoming QoS 2 marker. Unreadable or corrupt files are removed and counted in
 * *skipped. Orphan rel- markers are removed. Returns TERN_OK, TERN_ESTORE or TERN_ENOMEM.
 */
int tern__spool_load(struct tern__spool *s, struct tern__spool_rec **recs, size_t *nrecs,
                     bool *in_ids, size_t *skipped);
void tern__spool_free_recs(struct tern__spool_rec *recs, size_t n);

/* Store an outgoing message durably (see above). TERN_OK, TERN_ESTORE, TERN_ENOMEM. */
int tern__spool_put(struct tern__spool *s, const struct tern__spool_rec *r);

/* Durably note that message `pid` got its PUBREC. TERN_OK or TERN_ESTORE. */
int tern__spool_release(struct tern__spool *s, uint16_t pid);

/* The flow of message `pid` ended: remove its marker and file. TERN_OK or TERN_ESTORE. */
int tern__spool_del(struct tern__spool *s, uint16_t pid);

/* Incoming QoS 2 markers: add, remove one, remove all. TERN_OK or TERN_ESTORE. */
int tern__spool_in_add(struct tern__spool *s, uint16_t pid);
int tern__spool_in_del(struct tern__spool *s, uint16_t pid);
int tern__spool_in_clear(struct tern__spool *s);

/* Message of the last failure ("out-00017: No space left on device"), "" if none. */
const char *tern__spool_error(const struct tern__spool *s);

#endif /* TERN_CLIENT_SPOOL_H */
