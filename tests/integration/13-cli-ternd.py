# SPDX-License-Identifier: MIT
"""The `tern` CLI tests of 13-cli-mosquitto.py, run against ternd instead of mosquitto: the
same commands, outputs and exit codes must hold with our broker. The module is loaded again
under another name and its broker class is replaced, so both files share one set of tests.
"""

import importlib.util
import inspect
import os

import ternlib
from ternlib import Skip

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("cli_tests_on_ternd",
                                               os.path.join(HERE, "13-cli-mosquitto.py"))
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)


class Ternd(base.Mosquitto):
    """ternd with the same generated config (its config language is mosquitto's)."""

    def __init__(self, extra="allow_anonymous true", port=None):
        try:
            self.binary = os.path.abspath(ternlib.ternd_path())
        except ternlib.TestFailure:
            raise Skip("ternd not built (set TERND)")
        self.port = port or ternlib.free_port()
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="tern-cli-ternd-")
        self.extra = extra + "\nthreads %s" % os.environ.get("TERN_TEST_THREADS", "2")
        self.proc = None

    def argv(self, conf):
        return [self.binary, "-c", conf]


base.Mosquitto = Ternd


# Tests of behaviour ternd does not have yet, with the reason (checked at each run: remove the
# entry once ternd has the feature).
_NOT_YET = {
}


def _wrap(fn):
    if fn.__name__ in _NOT_YET:
        reason = _NOT_YET[fn.__name__]

        def skipped(**kw):
            raise Skip(reason)
        skipped.versions = getattr(fn, "versions", (4, 5))
        if "version" not in inspect.signature(fn).parameters:
            return lambda: skipped()
        return lambda version: skipped()
    if "version" in inspect.signature(fn).parameters:
        def test(version):
            return fn(version=version)
        test.versions = getattr(fn, "versions", (4, 5))
    else:
        def test():
            return fn()
    test.__doc__ = fn.__doc__
    return test


# Tests that start no broker add nothing when run twice.
_NO_BROKER = {"test_keepalive_and_ping_timeout", "test_connection_refused",
              "test_unsupported_transport_and_usage_errors", "test_help",
              "test_not_an_mqtt_server", "test_man_pages_cover_help"}

for _name, _fn in inspect.getmembers(base, inspect.isfunction):
    if (_name.startswith("test_") and _fn.__module__ == base.__name__
            and _name not in _NO_BROKER):
        globals()[_name] = _wrap(_fn)
