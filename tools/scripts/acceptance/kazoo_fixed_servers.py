"""pytest plugin: run kazoo's own test suite against servers someone else started.

kazoo's harness (kazoo/testing/harness.py) always launches a ZooKeeper cluster itself
through get_global_cluster(). This plugin replaces that function, before any test runs,
with one returning a fixed "cluster" made of the addresses in KAZOO_FIXED_SERVERS
(comma-separated host:port). Starting and terminating that cluster does nothing; a test
that needs to stop one server of it, or the TLS port, is skipped with a reason, because
a fixed server cannot be stopped and restarted from the test. Both servers compared by
compare.py are run with this same plugin, so such skips fall on both alike.

Use: PYTHONPATH=<this dir> KAZOO_FIXED_SERVERS=127.0.0.2:2181 pytest -p kazoo_fixed_servers
"""

import os

import pytest

SERVERS_ENV = "KAZOO_FIXED_SERVERS"


class FixedServer:
    """One already-running server: the subset of ManagedZooKeeper the tests use."""

    def __init__(self, address):
        self.address = address
        self.running = True

    @property
    def secure_address(self):
        pytest.skip("fixed servers have no TLS client port")

    @property
    def client_port(self):
        return int(self.address.rsplit(":", 1)[1])

    def run(self):
        pass

    def stop(self):
        pytest.skip("a fixed server cannot be stopped and restarted by a test")

    def reset(self):
        pass

    def destroy(self):
        pass

    def get_logs(self, num_lines=100):
        return []


class FixedCluster(list):
    """The subset of ZookeeperCluster the tests use; lifecycle calls are no-ops."""

    def start(self):
        pass

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

    cluster = FixedCluster(FixedServer(a) for a in addresses)
    harness.get_global_cluster = lambda: cluster
    harness.CLUSTER = cluster
