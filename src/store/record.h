/* SPDX-License-Identifier: MIT */
/*
 * Binary encodings of the store's blob columns, shared by both backends and fuzzed
 * (tests/fuzz/fuzz_store_records.c).
 *
 * Two formats, both canonical (one value has exactly one encoding, so decode + encode gives
 * back the input byte for byte) and both decoded without allocation into views that point
 * into the input:
 *  - will: format byte 1, flags (bits 0-1 QoS 0..2, bit 2 retain, others 0), will delay u32,
 *    message expiry u32, topic u16 length + bytes (non-empty), properties u32 length + bytes,
 *    payload u32 length + bytes; big-endian; lengths of properties and payload at most
 *    TERN_STORE_BLOB_MAX; nothing after the payload.
 *  - subscription identifiers: any number of MQTT variable byte integers, each
 *    1..268435455 in its shortest form, back to back.
 * Decoders reject anything else with TERN_ECORRUPT and never read outside [data, data + len).
 */
#ifndef TERN_STORE_RECORD_H
#define TERN_STORE_RECORD_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

#define TERN_STORE_WILL_FORMAT 1

/* Bytes tern__store_will_encode writes for w. */
size_t tern__store_will_size(const struct tern_store_will *w);
/*
 * Encode w into out (cap bytes). Returns the size written, TERN_ENOSPC when cap is too small,
 * TERN_EINVAL when w breaks the format's rules (QoS > 2, empty topic, a length too large).
 */
ssize_t tern__store_will_encode(const struct tern_store_will *w, uint8_t *out, size_t cap);
/* Decode; views in *w point into data. TERN_OK or TERN_ECORRUPT. */
int tern__store_will_decode(const uint8_t *data, size_t len, struct tern_store_will *w);

/* Subscription identifiers are stored as a run of MQTT varints, at most 4 bytes each. */
#define TERN_STORE_SUB_ID_BYTES 4
/* Encode n ids (each 1..268435455) into out; size written or TERN_EINVAL/ENOSPC. A buffer of
 * n * TERN_STORE_SUB_ID_BYTES always suffices. */
ssize_t tern__store_subids_encode(const uint32_t *ids, size_t n, uint8_t *out, size_t cap);
/* Decode into ids[cap]; *n gets the count. TERN_OK, or TERN_ECORRUPT (also when more than cap
 * ids are encoded; a run of len bytes never holds more than len ids). */
int tern__store_subids_decode(const uint8_t *data, size_t len, uint32_t *ids, size_t cap,
                              size_t *n);

#endif /* TERN_STORE_RECORD_H */
