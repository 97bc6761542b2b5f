#!/usr/bin/env python3
"""Capture golden client-protocol frames from real ZooKeeper 3.8 and real clients.

Starts a standalone Apache ZooKeeper (Debian's `zookeeper` package) on 127.0.0.1, puts a
recording TCP proxy in front of it, drives real clients through the proxy, and writes
every frame seen in each direction to transport/tests/golden/<client>-<scenario>-<n>.txt
(one file per TCP connection). transport/tests/golden.rs decodes and re-encodes them.

Clients:
  java   ZooKeeper's own Java client (what zkCli runs), via capture-golden.java: every op,
         reconnects that send setWatches and setWatches2.
  zkcli  zkCli (org.apache.zookeeper.ZooKeeperMain) commands fed on stdin.
  kazoo  kazoo (pip install kazoo): transactions, watches, auth, reconnect.
  c      the C client's cli_mt (Debian `zookeeper-bin`).

Setup (Debian 12):
  apt-get install -y zookeeper zookeeper-bin libnetty-java libslf4j-java liblog4j1.2-java
  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install kazoo
  /tmp/venv/bin/python tools/scripts/capture-golden.py [--out DIR] [--clients java,kazoo,...]

Everything listens on 127.0.0.1 only. Session ids, passwords and timestamps differ on
every run, so regenerating rewrites the files; the tests only need them to be real.
"""

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
JAVA_DIR = Path("/usr/share/java")
ZK_JARS = [
    "zookeeper.jar", "zookeeper-jute.jar", "netty-codec.jar", "netty-resolver.jar",
    "netty-transport-native-unix-common.jar", "netty-transport.jar", "netty-buffer.jar",
    "netty-common.jar", "netty-handler.jar", "slf4j-api.jar", "slf4j-log4j12.jar",
    "log4j-1.2.jar", "commons-cli.jar",
]
CLI_MT = "/usr/lib/zookeeper/bin/cli_mt"

OPS = {
    0: "notification", 1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData",
    6: "getACL", 7: "setACL", 8: "getChildren", 9: "sync", 11: "ping", 12: "getChildren2",
    13: "check", 14: "multi", 15: "create2", 16: "reconfig", 17: "checkWatches",
    18: "removeWatches", 19: "createContainer", 20: "deleteContainer", 21: "createTTL",
    22: "multiRead", 100: "auth", 101: "setWatches", 102: "sasl", 103: "getEphemerals",
    104: "getAllChildrenNumber", 105: "setWatches2", 106: "addWatch", 107: "whoAmI",
    -10: "createSession", -11: "closeSession", -1: "error",
}
SPECIAL_XIDS = {-1: 0, -2: 11, -4: 100, -8: 101}


def classpath(extra=()):
    jars = [str(JAVA_DIR / j) for j in ZK_JARS]
    missing = [j for j in jars if not os.path.exists(j)]
    if missing:
        sys.exit(f"missing jars (install zookeeper, libnetty-java, libslf4j-java, "
                 f"liblog4j1.2-java): {missing}")
    return ":".join(list(extra) + jars)


class Connection:
    def __init__(self, cid, label):
        self.cid = cid
        self.label = label
        self.frames = []  # (direction, bytes)
        self.sockets = []


class Proxy:
    """Forwards 127.0.0.1:<port> to ZooKeeper and records whole frames per connection."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.connections = []
        self.label = "unlabelled"
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                conn = Connection(len(self.connections), self.label)
                conn.sockets = [client, upstream]
                self.connections.append(conn)
            for src, dst, d in ((client, upstream, ">"), (upstream, client, "<")):
                threading.Thread(target=self._pump, args=(conn, src, dst, d), daemon=True).start()

    def _pump(self, conn, src, dst, direction):
        pending = b""
        while True:
            try:
                chunk = src.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            pending += chunk
            # Record before forwarding, so a request is always logged before its reply.
            while len(pending) >= 4:
                (length,) = struct.unpack(">i", pending[:4])
                if length < 0 or len(pending) < 4 + length:
                    break
                with self.lock:
                    conn.frames.append((direction, pending[:4 + length]))
                pending = pending[4 + length:]
            try:
                dst.sendall(chunk)
            except OSError:
                break
        for s in conn.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop_all(self):
        """Closes every proxied connection, as a network failure would."""
        with self.lock:
            conns = list(self.connections)
        for c in conns:
            for s in c.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def connection_count(self):
        with self.lock:
            return len(self.connections)


def wait_for(cond, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def ruok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"ruok")
            return s.recv(4) == b"imok"
    except OSError:
        return False


def start_zookeeper(workdir):
    port = free_port()
    data = workdir / "data"
    data.mkdir()
    cfg = workdir / "zoo.cfg"
    cfg.write_text(
        f"tickTime=2000\ndataDir={data}\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
        "admin.enableServer=false\n4lw.commands.whitelist=*\n")
    log = open(workdir / "server.log", "w")
    proc = subprocess.Popen(
        ["java", "-Dzookeeper.extendedTypesEnabled=true", "-Dlog4j.configuration=file:/dev/null",
         "-cp", classpath(), "org.apache.zookeeper.server.ZooKeeperServerMain", str(cfg)],
        stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: ruok(port), "ZooKeeper to answer ruok")
    return proc, port


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------- clients


def run_java(proxy, workdir, scenario):
    src = Path(__file__).with_suffix(".java")
    classes = workdir / "classes"
    if not classes.exists():
        classes.mkdir()
        subprocess.run(["javac", "-d", str(classes), "-cp", classpath(), str(src)], check=True)
    proxy.label = f"java-{scenario}"
    proc = subprocess.Popen(
        ["java", "-Dlog4j.configuration=file:/dev/null", "-cp", classpath([str(classes)]),
         "GoldenDriver", f"127.0.0.1:{proxy.port}", scenario],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        line = line.strip()
        if line == "DROP":
            before = proxy.connection_count()
            proxy.drop_all()
            wait_for(lambda: proxy.connection_count() > before, "java client to reconnect")
            proc.stdin.write("GO\n")
            proc.stdin.flush()
        elif line == "DONE":
            break
    if proc.wait(timeout=60) != 0:
        raise RuntimeError(f"java driver failed in scenario {scenario}")


def run_zkcli(proxy, workdir):
    proxy.label = "zkcli"
    commands = [
        "create /cli hello", "create -e -s /cli/eph- x", "create /cli/empty ''",
        "create /cli/null", "get -s -w /cli", "set /cli world", "ls -R /cli", "ls -s /cli",
        "stat /cli", "stat /missing", "get /missing", "getAllChildrenNumber /cli",
        "getEphemerals /cli", "addWatch /cli", "addWatch -m PERSISTENT /cli/empty",
        "set /cli/empty y", "setAcl /cli world:anyone:cdrwa", "getAcl /cli",
        "addauth digest user:pass", "whoami", "create -c /cli/container c",
        "create -t 60000 /cli/ttl t", "sync /cli", "delete /cli/null",
        "removewatches /cli/empty -a", "deleteall /cli", "close", "quit",
    ]
    proc = subprocess.Popen(
        ["java", "-Dlog4j.configuration=file:/dev/null", "-cp", classpath(),
         "org.apache.zookeeper.ZooKeeperMain", "-server", f"127.0.0.1:{proxy.port}"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    time.sleep(3)  # JVM start and session establishment; only pacing, not correctness
    for cmd in commands:
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()
        time.sleep(0.3)
    proc.stdin.close()
    proc.wait(timeout=30)


def run_kazoo(proxy):
    try:
        from kazoo.client import KazooClient
        from kazoo.security import make_digest_acl
    except ImportError:
        print("kazoo not installed: skipping", file=sys.stderr)
        return
    proxy.label = "kazoo"
    zk = KazooClient(hosts=f"127.0.0.1:{proxy.port}", timeout=4.0)
    zk.start(timeout=15)
    zk.ensure_path("/kz/a/b")
    zk.create("/kz/e-", b"eph", ephemeral=True, sequence=True)
    zk.create("/kz/empty", b"")
    zk.create("/kz/deep/er/node", b"x", makepath=True, include_data=True)
    fired = threading.Event()
    zk.exists("/kz/later", watch=lambda ev: fired.set())
    zk.get("/kz/empty", watch=lambda ev: None)
    zk.set("/kz/empty", b"now")
    zk.get_children("/kz", include_data=True)
    zk.get_children("/kz", watch=lambda ev: None)
    tx = zk.transaction()
    tx.create("/kz/t1", b"1")
    tx.set_data("/kz/empty", b"tx", version=1)
    tx.check("/kz", 0)
    tx.delete("/kz/t1")
    tx.commit()
    tx = zk.transaction()
    tx.create("/kz/t2", b"2")
    tx.check("/kz/empty", 99)
    tx.commit()
    zk.add_auth("digest", "kuser:kpass")
    acl = make_digest_acl("kuser", "kpass", all=True)
    zk.create("/kz/secret", b"s", acl=[acl])
    zk.get_acls("/kz/secret")
    zk.set_acls("/kz/secret", [make_digest_acl("kuser", "kpass", read=True, write=True)])
    zk.sync("/kz")
    zk.create("/kz/later", b"l")
    fired.wait(10)
    time.sleep(2.0)  # idle: kazoo pings
    before = proxy.connection_count()
    proxy.drop_all()  # kazoo resumes the session on a new connection
    wait_for(lambda: proxy.connection_count() > before, "kazoo to reconnect")
    wait_for(lambda: zk.connected, "kazoo to resume")
    zk.get("/kz/later")
    zk.delete("/kz", recursive=True)
    zk.stop()
    zk.close()


def run_c_client(proxy):
    if not os.path.exists(CLI_MT):
        print("cli_mt not installed (zookeeper-bin): skipping", file=sys.stderr)
        return
    proxy.label = "c"
    commands = [
        # cli_mt takes the rest of a create line as the path; data is its fixed "new".
        "create /cc", "create +e /cc/eph", "create +s /cc/seq-", "get /cc", "set /cc world",
        "ls /cc", "ls2 /cc", "exists /cc", "exists /cc/missing", "get /cc/missing",
        "sync /cc", "addauth digest cuser:cpass", "get /cc", "ls /cc", "DROP", "set /cc again",
        "delete /cc/eph", "delete /cc/missing",
        "quit",
    ]
    proc = subprocess.Popen([CLI_MT, f"127.0.0.1:{proxy.port}"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.5)
    for cmd in commands:
        if cmd == "DROP":
            # Reconnect: the C client resumes its session and re-sends its watches
            # with setWatches under the special xid -8.
            before = proxy.connection_count()
            proxy.drop_all()
            wait_for(lambda: proxy.connection_count() > before, "C client to reconnect")
            time.sleep(1.0)
            continue
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()
        time.sleep(0.3)
    proc.stdin.close()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


# ------------------------------------------------------------------------- output


def describe(conn):
    """One annotated line per frame: direction, hex, and a comment for humans."""
    lines = []
    xid_ops = {}
    seen_connect = {">": False, "<": False}
    for direction, frame in conn.frames:
        body = frame[4:]
        if not seen_connect[direction]:
            seen_connect[direction] = True
            note = f"connect {'request' if direction == '>' else 'response'} ({len(body)} bytes)"
        elif direction == ">":
            xid, op = struct.unpack(">ii", body[:8])
            xid_ops[xid] = op
            note = f"xid={xid} {OPS.get(op, op)}"
        else:
            xid, zxid, err = struct.unpack(">iqi", body[:16])
            op = SPECIAL_XIDS.get(xid, xid_ops.get(xid))
            note = f"xid={xid} zxid={zxid:#x} err={err} reply to {OPS.get(op, op)}"
        lines.append(f"{direction} {frame.hex()}  # {note}")
    return lines


def write_files(proxy, out, clients):
    for client in clients:
        for old in out.glob(f"{client}-*.txt"):
            old.unlink()
    per_label = {}
    for conn in proxy.connections:
        if not conn.frames:
            continue
        n = per_label.get(conn.label, 0) + 1
        per_label[conn.label] = n
        path = out / f"{conn.label}-{n}.txt"
        header = [
            f"# Frames of one TCP connection: {conn.label} client <-> Apache ZooKeeper 3.8.0.",
            "# Captured by tools/scripts/capture-golden.py (see its docstring to regenerate).",
            "# Format: <dir> <hex of the whole frame, length prefix included>  # note",
            "#   '>' client to server, '<' server to client; the first frame each way is the",
            "#   connect handshake (no header).",
        ]
        path.write_text("\n".join(header + describe(conn)) + "\n")
        print(f"wrote {path.relative_to(REPO)} ({len(conn.frames)} frames)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "transport" / "tests" / "golden")
    ap.add_argument("--clients", default="java,zkcli,kazoo,c")
    args = ap.parse_args()
    clients = args.clients.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="capture-golden-"))
    server, zk_port = start_zookeeper(workdir)
    try:
        proxy = Proxy(zk_port)
        if "java" in clients:
            run_java(proxy, workdir, "all")
            run_java(proxy, workdir, "setwatches")
        if "zkcli" in clients:
            run_zkcli(proxy, workdir)
        if "kazoo" in clients:
            run_kazoo(proxy)
        if "c" in clients:
            run_c_client(proxy)
        time.sleep(0.5)  # let the last replies drain through the proxy
        write_files(proxy, args.out, clients)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
