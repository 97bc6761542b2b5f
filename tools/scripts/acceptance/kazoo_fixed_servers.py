"""pytest plugin: run kazoo's own test suite against servers someone else started.

kazoo's harness (kazoo/testing/harness.py) always launches a ZooKeeper cluster itself
through get_global_cluster(). This plugin replaces that function, before any test runs,
with one returning a fixed "cluster" made of the addresses in KAZOO_FIXED_SERVERS
(comma-separated host:port). Starting and terminating that cluster does nothing. A test
that stops and restarts the first server (kazoo's request-queuing tests) runs the shell
commands in KAZOO_FIXED_STOP_CMD and KAZOO_FIXED_START_CMD (the start command returns once
the server answers); without them, or for another server, or for the TLS port, the test
is skipped with a reason. Both servers compared by compare.py run with this same plugin,
so such skips fall on both alike.

Use: PYTHONPATH=<this dir> KAZOO_FIXED_SERVERS=127.0.0.2:2181 pytest -p kazoo_fixed_servers
"""

import os
import subprocess

import pytest

SERVERS_ENV = "KAZOO_FIXED_SERVERS"
STOP_ENV = "KAZOO_FIXED_STOP_CMD"
START_ENV = "KAZOO_FIXED_START_CMD"
# Bound on one stop or start command (server.sh bounds its own waits below this).
CONTROL_S_MAX = 120


def control(env, what):
    cmd = os.environ.get(env)
    if not cmd:
        pytest.skip(f"a fixed server cannot be {what} by a test without {env}")
    subprocess.run(cmd, shell=True, check=True, timeout=CONTROL_S_MAX)


class FixedServer:
    """One already-running server: the subset of ManagedZooKeeper the tests use."""

    def __init__(self, address, controllable):
        self.address = address
        self.running = True
        self.controllable = controllable

    @property
    def secure_address(self):
        pytest.skip("fixed servers have no TLS client port")

    @property
    def client_port(self):
        return int(self.address.rsplit(":", 1)[1])

    def run(self):
        if not self.running:
            control(START_ENV, "restarted")
            self.running = True

    def stop(self):
        if not self.controllable:
            pytest.skip("only the first fixed server can be stopped by a test")
        control(STOP_ENV, "stopped")
        self.running = False

    def reset(self):
        pass

    def destroy(self):
        pass

    def get_logs(self, num_lines=100):
        return []


class FixedCluster(list):
    """The subset of ZookeeperCluster the tests use; lifecycle calls are no-ops."""

    def start(self):
        for server in self:
            server.run()  # restarts one a failed test left stopped

    def stop(self):
        pass

    def terminate(self):
        pass

    def reset(self):
        pass

    def get_logs(self):
        return []

    def get_ssl_client_configuration(self):
        pytest.skip("fixed servers have no TLS client port")


def pytest_configure(config):
    addresses = [a.strip() for a in os.environ.get(SERVERS_ENV, "").split(",") if a.strip()]
    if not addresses:
        raise pytest.UsageError(f"{SERVERS_ENV} must name at least one host:port")
    from kazoo.testing import harness

    cluster = FixedCluster(FixedServer(a, i == 0) for i, a in enumerate(addresses))
    harness.get_global_cluster = lambda: cluster
    harness.CLUSTER = cluster
