# SPDX-License-Identifier: MIT
"""mount_point (a listener option, as in Mosquitto): the clients of a mounted listener live in
their own subtree. Their topics and filters get the prefix on the way in (PUBLISH, will,
SUBSCRIBE, UNSUBSCRIBE, inside $share), and lose it on the way out (live and retained
messages), so they never see it; clients of other listeners see the full topics."""

from ternlib import (CONNACK, PUBLISH, UNSUBACK, Conn, broker, check, client, connect, eq, free_port,
                     props, publish, subscribe, unsubscribe, versions, wait_listening,
                     P_TOPIC_ALIAS)


def mounted(extra=""):
    port = free_port()
    b = broker("listener %d 127.0.0.1\nmount_point site1/\n%s" % (port, extra))
    b.mport = port
    return b


def up(b):
    """The Broker waits for its first listener only: wait for the mounted one too."""
    check(wait_listening(b.mport), "mounted listener up")


@versions(3, 4, 5)
def test_mounted_client_sees_only_its_subtree_without_prefix(version):
    with mounted() as b:
        up(b)
        inside = client(b.mport, "in", version=version)
        inside.subscribe([("#", 1)])
        outside = client(b.port, "out", version=version)
        outside.subscribe([("#", 1)])
        writer = client(b.port, "out-writer", version=version)
        writer.publish("other/x", b"not for them", qos=1, mid=1)
        writer.publish("site1/sensors/t", b"21.5", qos=1, mid=2)
        p = inside.expect(PUBLISH)
        eq((p.topic, p.payload), (b"sensors/t", b"21.5"), "its subtree only, prefix taken off")
        neighbour = client(b.mport, "in-writer", version=version)
        neighbour.publish("sensors/h", b"40", qos=1, mid=1)
        got = sorted(outside.expect(PUBLISH).topic for _ in range(3))
        eq(got, [b"other/x", b"site1/sensors/h", b"site1/sensors/t"], "outside sees full topics")
        p = inside.expect(PUBLISH)
        eq((p.topic, p.payload), (b"sensors/h", b"40"), "a neighbour's publish, prefix off")
        inside.expect_nothing(0.2)


@versions(4, 5)
def test_retained_will_unsubscribe_and_shared(version):
    with mounted() as b:
        up(b)
        outside = client(b.port, "out", version=version)
        outside.publish("site1/cfg", b"blue", qos=1, retain=True, mid=1)
        inside = client(b.mport, "in", version=version)
        inside.subscribe([("cfg", 1)])
        p = inside.expect(PUBLISH)
        eq((p.topic, p.payload, p.retain), (b"cfg", b"blue", True), "retained, prefix off")
        # UNSUBSCRIBE takes the prefix too.
        inside.send(unsubscribe(2, ["cfg"], version=version))
        ua = inside.expect(UNSUBACK)
        if version == 5:
            eq(ua.reasons, [0], "subscription found under the prefix")
        outside.publish("site1/cfg", b"red", qos=1, mid=2)
        inside.expect_nothing(0.3)
        # Shared subscriptions: the prefix goes on the inner filter.
        inside.subscribe([("$share/g/jobs/#", 1)], mid=3)
        outside.publish("site1/jobs/1", b"j1", qos=1, mid=3)
        p = inside.expect(PUBLISH)
        eq((p.topic, p.payload), (b"jobs/1", b"j1"), "shared delivery without the prefix")
        # A will gets the prefix.
        outside.subscribe([("site1/status/#", 1)], mid=4)
        dying = Conn(b.mport, version=version)
        dying.send(connect("dev", version, will=dict(topic="status/dev", payload=b"offline",
                                                     qos=1)))
        dying.expect(CONNACK)
        dying.close()
        p = outside.expect(PUBLISH)
        eq((p.topic, p.payload), (b"site1/status/dev", b"offline"), "will under the prefix")


@versions(5)
def test_invalid_filters_and_dollar_topics_stay_refused(version):
    with mounted() as b:
        up(b)
        inside = client(b.mport, "in", version=version)
        sa = inside.subscribe([("a/#/b", 0), ("$share/g", 0), ("ok/#", 0)])
        eq(sa.reasons, [0x8F, 0x8F, 0], "invalid as sent, even though 'site1/...' would be valid")
        outside = client(b.port, "out", version=version)
        outside.subscribe([("#", 0)])
        r = inside.publish("$SYS/fake", b"x", qos=1, mid=1)
        eq(r.reason, 0x87, "a '$' topic is judged as the client sent it")
        outside.expect_nothing(0.3)
        # Topic aliases resolve before the prefix goes on.
        inside.send(publish("al/1", b"a", version=5, properties=props((P_TOPIC_ALIAS, 1))))
        inside.send(publish("", b"b", version=5, properties=props((P_TOPIC_ALIAS, 1))))
        got = [outside.expect(PUBLISH) for _ in range(2)]
        eq([(m.topic, m.payload) for m in got], [(b"site1/al/1", b"a"), (b"site1/al/1", b"b")],
           "aliased publishes mounted")
