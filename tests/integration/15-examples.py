# SPDX-License-Identifier: MIT
"""15 examples: the programs in examples/ run against a live ternd and do what they say."""

import os
import subprocess

from ternlib import Skip, broker, eq, ternd_path


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
