# SPDX-License-Identifier: MIT
"""Connection buffers allocated on demand (src/broker/conn.c): an idle connection owns no input
or output buffer, so these tests check that buffers come back whenever traffic does.

- 2,000 connections sit idle, then all of them publish at once and each receives a message
  of its own: every PUBACK and every delivery arrives, byte for byte.
- Packets longer than one read (1 MiB, and one just past the broker's 32 KiB read buffer)
  assemble across reads, also when the next packet follows in the same segment.
- A CONNECT, SUBSCRIBE and PUBLISH sent one byte at a time work.
No timing is asserted; the waits only make separate reads likely.
"""

import socket
import time

from ternlib import (CONNACK, PUBACK, PUBLISH, SUBACK, Conn, broker, check, client, connect,
                     eq, publish, subscribe, versions)

IDLE = 2000


def recv_packets(sock, buf, count, deadline):
    """Read until `count` whole packets are in buf (a bytearray); returns (type, raw) pairs."""
    out = []
    while len(out) < count:
        while len(buf) >= 2:
            n, mul, pos = 0, 1, 1
            while pos < len(buf):
                b = buf[pos]
                n += (b & 0x7F) * mul
                mul *= 128
                pos += 1
                if not b & 0x80:
                    break
            else:
                break
            if len(buf) < pos + n:
                break
            out.append((buf[0] >> 4, bytes(buf[:pos + n]), pos))
            del buf[:pos + n]
            if len(out) == count:
                return out
        left = deadline - time.monotonic()
        check(left > 0, "timed out with %d of %d packets" % (len(out), count))
        sock.settimeout(left)
        data = sock.recv(65536)
        check(data, "connection closed by the broker")
        buf += data
    return out


@versions(4, 5)
def test_idle_connections_then_burst(version):
    """2,000 subscribed connections idle (their buffers released), then every one publishes a
    QoS 1 message (every 100th one 40 KiB, more than one read) and receives its own message."""
    with broker("max_queued_messages 5000") as b:
        socks, bufs = [], []
        try:
            for i in range(IDLE):
                s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
                s.sendall(connect("idle-%d" % i, version) +
                          subscribe(1, [("idle/%d" % i, 1)], version))
                socks.append(s)
                bufs.append(bytearray())
            deadline = time.monotonic() + 60
            for s, buf in zip(socks, bufs):
                got = recv_packets(s, buf, 2, deadline)
                eq([t for t, _, _ in got], [CONNACK, SUBACK], "CONNACK, SUBACK")
            time.sleep(0.3)  # idle: every flush done, buffers released

            sink = client(b.port, "sink", version=version)
            sink.subscribe([("burst/#", 1)])
            big = bytes(range(256)) * 160  # 40 KiB
            for i, s in enumerate(socks):
                payload = big if i % 100 == 0 else b"from %d" % i
                s.sendall(publish("burst/%d" % i, payload, qos=1, mid=7, version=version))
            for s, buf in zip(socks, bufs):
                got = recv_packets(s, buf, 1, deadline)
                eq(got[0][0], PUBACK, "PUBACK")
            seen = {}
            for _ in range(IDLE):
                p = sink.recv(timeout=30)
                eq(p.type, PUBLISH, "delivery to the sink")
                sink.send(bytes([0x40, 2]) + p.mid.to_bytes(2, "big"))
                seen[p.topic] = p.payload
            eq(len(seen), IDLE, "distinct topics delivered")
            for i in range(0, IDLE, 100):
                check(seen[b"burst/%d" % i] == big, "40 KiB payload of %d intact" % i)
            eq(seen[b"burst/1999"], b"from 1999", "small payload")

            # Output to every idle connection: one message each, from one publisher.
            pub = client(b.port, "pub", version=version)
            for i in range(IDLE):
                pub.send(publish("idle/%d" % i, b"to %d" % i, qos=0, version=version))
            for i, (s, buf) in enumerate(zip(socks, bufs)):
                (t, raw, pos), = recv_packets(s, buf, 1, deadline)
                eq(t, PUBLISH, "PUBLISH to idle connection")
                check(raw.endswith(b"to %d" % i), "payload to %d: %r" % (i, raw[-16:]))
        finally:
            for s in socks:
                s.close()


def large_roundtrip(version, size, pieces, tail_small):
    """Publish `size` bytes in `pieces` separate sends; optionally a small QoS 1 PUBLISH in
    the same send as the end of the large one. The subscriber gets both intact."""
    with broker("message_size_limit 0\nmax_packet_size 2000000") as b:
        sub = client(b.port, "sub", version=version)
        sub.subscribe([("big/#", 0)])
        pub = client(b.port, "pub", version=version)
        payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
        data = publish("big/one", payload, qos=1, mid=1, version=version)
        if tail_small:
            data += publish("big/two", b"after", qos=1, mid=2, version=version)
        step = (len(data) + pieces - 1) // pieces
        for off in range(0, len(data), step):
            pub.send(data[off:off + step])
            time.sleep(0.01)
        eq(pub.expect(PUBACK, timeout=20).mid, 1, "PUBACK of the large one")
        if tail_small:
            eq(pub.expect(PUBACK).mid, 2, "PUBACK of the small one")
        p = sub.recv(timeout=20)
        eq(p.topic, b"big/one", "topic")
        eq(len(p.payload), size, "payload size")
        check(p.payload == payload, "payload intact")
        if tail_small:
            p = sub.recv(timeout=20)
            eq((p.topic, p.payload), (b"big/two", b"after"), "packet after the large one")


@versions(4, 5)
def test_1mib_publish_across_reads(version):
    large_roundtrip(version, 1 << 20, 40, tail_small=True)


@versions(4, 5)
def test_packet_just_over_read_buffer(version):
    """32 KiB + 100: longer than the broker's read buffer, so it is assembled in its own."""
    large_roundtrip(version, 32768 + 100, 3, tail_small=True)
    large_roundtrip(version, 32768 - 64, 2, tail_small=True)


@versions(4, 5)
def test_packets_one_byte_at_a_time(version):
    """CONNECT, SUBSCRIBE and a 300-byte PUBLISH, each byte in its own send."""
    with broker() as b:
        sub = Conn(b.port, version=version)
        for byte in connect("bytewise", version) + subscribe(3, [("bw/t", 1)], version):
            sub.send(bytes([byte]))
            time.sleep(0.0005)
        sub.expect(CONNACK)
        eq(sub.expect(SUBACK).mid, 3, "SUBACK")
        pub = client(b.port, "pub", version=version)
        payload = bytes(range(256)) + b"x" * 44
        for byte in publish("bw/t", payload, qos=1, mid=9, version=version):
            pub.send(bytes([byte]))
            time.sleep(0.0005)
        eq(pub.expect(PUBACK).mid, 9, "PUBACK")
        p = sub.expect(PUBLISH)
        check(p.payload == payload, "payload intact")
