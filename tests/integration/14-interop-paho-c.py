# SPDX-License-Identifier: MIT
"""Interop: Eclipse Paho C (libpaho-mqtt3c, synchronous MQTTClient API) against ternd with
MQTT 3.1.1 and 5.0: connect, subscribe, publish and receive its own messages at QoS 0/1/2.
The client program is compiled by the test."""

import os
import shutil
import subprocess
import tempfile

from ternlib import Skip, broker, check, eq

SRC = r"""
#include <MQTTClient.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s failed: %d\n", what, rc);
    return 1;
}

int main(int argc, char **argv)
{
    const char *uri = argv[1];
    int v5 = atoi(argv[2]);
    MQTTClient c;
    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    co.MQTTVersion = v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    int rc = MQTTClient_createWithOptions(&c, uri, "paho-c", MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                          &co);
    if (rc != MQTTCLIENT_SUCCESS)
        return fail("create", rc);
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    if (v5) {
        MQTTClient_connectOptions o5 = MQTTClient_connectOptions_initializer5;
        opts = o5;
    } else {
        opts.cleansession = 1;
    }
    opts.keepAliveInterval = 20;
    opts.MQTTVersion = co.MQTTVersion;
    MQTTResponse r = MQTTResponse_initializer;
    if (v5) {
        r = MQTTClient_connect5(c, &opts, NULL, NULL);
        if (r.reasonCode != 0)
            return fail("connect5", r.reasonCode);
        MQTTResponse_free(r);
    } else if ((rc = MQTTClient_connect(c, &opts)) != MQTTCLIENT_SUCCESS) {
        return fail("connect", rc);
    }
    char *topics[] = {"pc/#"};
    int qos[] = {2};
    if (v5) {
        MQTTSubscribe_options so = MQTTSubscribe_options_initializer;
        MQTTSubscribe_options sos[] = {so};
        r = MQTTClient_subscribeMany5(c, 1, topics, qos, sos, NULL);
        if (r.reasonCode != 2)
            return fail("subscribe5", r.reasonCode);
        MQTTResponse_free(r);
    } else if ((rc = MQTTClient_subscribeMany(c, 1, topics, qos)) != MQTTCLIENT_SUCCESS) {
        return fail("subscribe", rc);
    }
    for (int q = 0; q < 3; q++) {
        char topic[32], payload[32];
        snprintf(topic, sizeof topic, "pc/%d", q);
        snprintf(payload, sizeof payload, "paho-c-%d", q);
        MQTTClient_message m = MQTTClient_message_initializer;
        m.payload = payload;
        m.payloadlen = (int)strlen(payload);
        m.qos = q;
        MQTTClient_deliveryToken tok;
        if (v5) {
            r = MQTTClient_publishMessage5(c, topic, &m, &tok);
            if (r.reasonCode >= 0x80)
                return fail("publish5", r.reasonCode);
            MQTTResponse_free(r);
        } else if ((rc = MQTTClient_publishMessage(c, topic, &m, &tok)) != MQTTCLIENT_SUCCESS) {
            return fail("publish", rc);
        }
        if ((rc = MQTTClient_waitForCompletion(c, tok, 5000)) != MQTTCLIENT_SUCCESS)
            return fail("wait", rc);
    }
    for (int i = 0; i < 3; i++) {
        char *tn = NULL;
        int tl = 0;
        MQTTClient_message *m = NULL;
        rc = MQTTClient_receive(c, &tn, &tl, &m, 5000);
        if (rc != MQTTCLIENT_SUCCESS || m == NULL)
            return fail("receive", rc);
        printf("%s %.*s %d\n", tn, m->payloadlen, (char *)m->payload, m->qos);
        MQTTClient_freeMessage(&m);
        MQTTClient_free(tn);
    }
    if (v5) {
        MQTTClient_disconnect5(c, 1000, MQTTREASONCODE_NORMAL_DISCONNECTION, NULL);
    } else {
        MQTTClient_disconnect(c, 1000);
    }
    MQTTClient_destroy(&c);
    return 0;
}
"""


def build():
    if not os.path.exists("/usr/include/MQTTClient.h") or not shutil.which("cc"):
        raise Skip("libpaho-mqtt-dev not installed")
    d = tempfile.mkdtemp(prefix="paho-c-")
    src = os.path.join(d, "pahoc.c")
    exe = os.path.join(d, "pahoc")
    with open(src, "w") as f:
        f.write(SRC)
    r = subprocess.run(["cc", "-o", exe, src, "-lpaho-mqtt3c"], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("cannot build the Paho C client:\n" + r.stderr.decode())
    return exe


def test_paho_c_pubsub_all_qos(version):
    exe = build()
    with broker() as b:
        r = subprocess.run([exe, "tcp://127.0.0.1:%d" % b.port, "1" if version == 5 else "0"],
                           capture_output=True, timeout=30)
        eq(r.returncode, 0, "paho C client exit (stderr %r)" % r.stderr)
        lines = sorted(r.stdout.decode().splitlines())
        eq(lines, ["pc/0 paho-c-0 0", "pc/1 paho-c-1 1", "pc/2 paho-c-2 2"], "messages")
