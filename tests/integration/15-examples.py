# SPDX-License-Identifier: MIT
"""15 examples: the programs in examples/ run against a live ternd and do what they say:
hello, the car door lock (MQTT 5 request/response), the sensor status (retained status and
retained will) and the firmware update (QoS 1 chunks with a SHA-256 manifest)."""

import hashlib
import os
import subprocess
import tempfile

from ternlib import Skip, TestFailure, broker, check, eq, ternd_path


def example(name):
    path = os.path.join(os.path.dirname(os.path.dirname(ternd_path())), "..", "examples", name)
    path = os.path.normpath(path)
    if not os.path.exists(path):
        raise Skip("%s not built" % path)
    return path


def test_hello_round_trip():
    with broker() as b:
        out = subprocess.run([example("example_hello"), "mqtt://127.0.0.1:%d" % b.port, "ex/t"],
                             capture_output=True, timeout=20)
        eq(out.returncode, 0, "exit code (stderr: %r)" % out.stderr)
        eq(out.stdout, b"ex/t (QoS 1): hello from libtern\n", "output")


def _start(args, **kw):
    """Start an example in the background; wait for its first line (e.g. "ready")."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    first = p.stdout.readline()
    return p, first


def _finish(p, timeout=20):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise TestFailure("%s did not finish: %r" % (p.args[0], err))
    return p.returncode, out, err


def test_door_lock_request_response():
    """The app's command reaches the car, and the car's answer comes back on the app's
    response topic carrying the app's correlation data."""
    with broker() as b:
        url = "mqtt://127.0.0.1:%d" % b.port
        car, first = _start([example("example_door_lock"), "car", url, "VIN42", "2"])
        eq(first, b"ready\n", "car subscribed")
        for cmd, state in (("lock", b"locked"), ("unlock", b"unlocked")):
            app = subprocess.run([example("example_door_lock"), "app", url, "VIN42", cmd],
                                 capture_output=True, timeout=20)
            eq(app.returncode, 0, "app exit (stderr %r)" % app.stderr)
            eq(app.stdout, b"car VIN42 confirmed: " + state + b"\n", "confirmation")
        rc, out, err = _finish(car)
        eq(rc, 0, "car exit (stderr %r)" % err)
        eq(out, b"car VIN42: lock -> locked\ncar VIN42: unlock -> unlocked\n", "car log")


def test_sensor_status_will_flips_to_offline():
    """A killed sensor's retained will turns its status to offline for a live watcher and for
    anyone subscribing later."""
    with broker() as b:
        url = "mqtt://127.0.0.1:%d" % b.port
        sensor, first = _start([example("example_sensor_status"), "sensor", url, "s1"])
        eq(first, b"s1 online\n", "sensor up")
        watcher, first = _start([example("example_sensor_status"), "watch", url, "s1", "2"])
        eq(first, b"s1 online (retained)\n", "watcher sees the retained online")
        sensor.kill()  # SIGKILL: no DISCONNECT, the broker publishes the will
        sensor.wait()
        rc, out, err = _finish(watcher)
        eq((rc, out), (0, b"s1 offline\n"), "live watcher (stderr %r)" % err)
        late = subprocess.run([example("example_sensor_status"), "watch", url, "s1", "1"],
                              capture_output=True, timeout=20)
        eq((late.returncode, late.stdout), (0, b"s1 offline (retained)\n"), "later subscriber")


def test_sensor_status_clean_stop_says_offline():
    with broker() as b:
        url = "mqtt://127.0.0.1:%d" % b.port
        run = subprocess.run([example("example_sensor_status"), "sensor", url, "s2", "5"],
                             capture_output=True, timeout=20)
        eq(run.returncode, 0, "sensor exit (stderr %r)" % run.stderr)
        late = subprocess.run([example("example_sensor_status"), "watch", url, "s2", "1"],
                              capture_output=True, timeout=20)
        eq(late.stdout, b"s2 offline (retained)\n", "status after a clean stop")


def test_firmware_update_chunks_and_sha256():
    """A 150 KB binary image (37 chunks, NUL bytes and all) arrives intact and verified."""
    image = bytes(range(256)) * 600
    with broker() as b, tempfile.TemporaryDirectory() as d:
        url = "mqtt://127.0.0.1:%d" % b.port
        src, dst = os.path.join(d, "fw.bin"), os.path.join(d, "out.bin")
        with open(src, "wb") as f:
            f.write(image)
        dev, first = _start([example("example_firmware_update"), "device", url, "d7", dst])
        eq(first, b"ready\n", "device subscribed")
        srv = subprocess.run([example("example_firmware_update"), "server", url, "d7", src],
                             capture_output=True, timeout=30)
        sha = hashlib.sha256(image).hexdigest().encode()
        eq(srv.returncode, 0, "server exit (stderr %r)" % srv.stderr)
        eq(srv.stdout, b"device d7: ok sha256=" + sha + b"\n", "device report")
        rc, out, err = _finish(dev)
        eq(rc, 0, "device exit (stderr %r)" % err)
        with open(dst, "rb") as f:
            check(f.read() == image, "image written byte for byte")
