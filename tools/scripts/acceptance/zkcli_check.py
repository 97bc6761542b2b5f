#!/usr/bin/env python3
"""Acceptance item 1: Apache ZooKeeper's zkCli against a server.

Feeds one zkCli session (org.apache.zookeeper.ZooKeeperMain, stdin not a terminal, so it
reads commands line by line and runs each synchronously) a script that creates, reads,
updates, lists, watches and deletes nodes (and authenticates, sets digest ACLs, asks
whoami, removes watches), then checks that every line ZooKeeper 3.8
prints for that script appears in the output. A second session then checks that the first
session's ephemeral node went away when it closed. Watches are set and triggered by the
same session: the server sends the event before the reply of the write that fires it, so
no second client and no waiting is needed.

The expected lines were taken from ZooKeeper 3.8.0 itself; run.sh runs this script against
ZooKeeper as well as corekeeper, so a wrong expectation shows up as a ZooKeeper failure.

Usage: zkcli_check.py --server HOST:PORT --classpath CP [--root /acc-zkcli]
Exit status 0 when every check passed; prints one line per check.
"""

import argparse
import subprocess
import sys

# Every zkCli run is bounded: JVM start, connect and the whole script.
SESSION_TIMEOUT_S_MAX = 120


def script(root):
    """(commands, expected output lines, check names) for one zkCli session."""
    r = root
    steps = [
        # (command, [lines it must print], what it checks)
        (f"create {r} hello", [f"Created {r}"], "create persistent"),
        (f"get {r}", ["hello"], "get data"),
        (f"get -s {r}", ["dataVersion = 0", "dataLength = 5", "numChildren = 0",
                         "ephemeralOwner = 0x0"], "get -s stat"),
        (f"create {r}/child c1", [f"Created {r}/child"], "create child"),
        (f"create -s {r}/seq- s", [f"Created {r}/seq-0000000001"], "create sequential"),
        (f"create {r}/child again", [f"Node already exists: {r}/child"], "create existing"),
        (f"create -e {r}-eph e", [f"Created {r}-eph"], "create ephemeral"),
        (f"get -w {r}", ["hello"], "get with watch"),
        (f"set {r} world", ["WatchedEvent state:SyncConnected type:NodeDataChanged "
                            f"path:{r}"], "data watch fires on set"),
        (f"get {r}", ["world"], "set updated data"),
        (f"stat {r}", ["dataVersion = 1", "dataLength = 5", "numChildren = 2"], "stat"),
        (f"set -v 0 {r} stale", [f"version No is not valid : {r}"], "conditional set"),
        (f"ls {r}", [f"[child, seq-0000000001]"], "ls"),
        (f"ls -w {r}", [f"[child, seq-0000000001]"], "ls with watch"),
        (f"create {r}/child2 c2", [f"Created {r}/child2", "WatchedEvent state:SyncConnected "
                                   f"type:NodeChildrenChanged path:{r}"], "child watch fires"),
        (f"stat -w {r}/later", [f"Node does not exist: {r}/later"], "exists watch"),
        (f"create {r}/later x", [f"Created {r}/later", "WatchedEvent state:SyncConnected "
                                 f"type:NodeCreated path:{r}/later"], "exists watch fires"),
        (f"addWatch {r}/child", [], "persistent recursive watch"),
        (f"create {r}/child/deep d", [f"Created {r}/child/deep", "WatchedEvent "
                                      f"state:SyncConnected type:NodeCreated path:{r}/child/deep"],
         "recursive watch fires"),
        (f"ls -R {r}", [r, f"{r}/child", f"{r}/child/deep", f"{r}/child2", f"{r}/later",
                        f"{r}/seq-0000000001"], "ls -R"),
        (f"getAllChildrenNumber {r}", ["5"], "getAllChildrenNumber"),
        (f"getAcl {r}", ["'world,'anyone", ": cdrwa"], "getAcl"),
        (f"delete {r}", [f"Node not empty: {r}"], "delete non-empty"),
        (f"delete -v 3 {r}/later", [f"version No is not valid : {r}/later"],
         "conditional delete"),
        (f"delete {r}/later", [], "delete"),
        (f"stat {r}/later", [f"Node does not exist: {r}/later"], "deleted node is gone"),
        (f"sync {r}", ["Sync is OK"], "sync"),
        ("addauth digest alice:secret", [], "addauth digest"),
        ("whoami", ["Auth scheme: User", "digest: alice"], "whoami"),
        (f"create {r}/sec s", [f"Created {r}/sec"], "create for an ACL"),
        (f"setAcl {r}/sec auth:alice:secret:cdrwa", [], "setAcl auth scheme"),
        (f"getAcl {r}/sec", ["'digest,'alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=", ": cdrwa"],
         "getAcl shows the digest id"),
        (f"get {r}/sec", ["s"], "read under a digest ACL"),
        (f"create -c {r}/box b", [f"Created {r}/box"], "create container"),
        (f"create -s -e {r}/eseq- e", [f"Created {r}/eseq-0000000006"],
         "create ephemeral sequential"),
        # A path prefix, not a subtree: {r}-eph matches too. The order is unspecified.
        (f"getEphemerals {r}", [(f"[{r}/eseq-0000000006, {r}-eph]",
                                 f"[{r}-eph, {r}/eseq-0000000006]")], "getEphemerals"),
        (f"get -w {r}/box", ["b"], "watch to remove"),
        (f"removewatches {r}/box -d", ["WatchedEvent state:SyncConnected "
                                        f"type:DataWatchRemoved path:{r}/box"], "removewatches"),
        (f"create {r}/missing/child c", [f"Node does not exist: {r}/missing/child"],
         "create under a missing parent"),
        ("create no-slash x", ["Path must start with / character"], "invalid path"),
        (f"deleteall {r}", [], "deleteall"),
        (f"get {r}", [f"Node does not exist: {r}"], "deleteall removed the tree"),
        (f"get {r}-eph", ["e"], "ephemeral readable in its session"),
        ("quit", [], "quit"),
    ]
    return steps


def zkcli(classpath, server, stdin_text, args=()):
    cmd = ["java", "-Dlog4j.configuration=file:/dev/null", "-cp", classpath,
           "org.apache.zookeeper.ZooKeeperMain", "-server", server, *args]
    p = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True,
                       timeout=SESSION_TIMEOUT_S_MAX)
    return p.returncode, p.stdout + p.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--classpath", required=True)
    ap.add_argument("--root", default="/acc-zkcli")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    label = a.label or a.server

    steps = script(a.root)
    _, out = zkcli(a.classpath, a.server, "".join(c + "\n" for c, _, _ in steps))
    lines = {ln.strip() for ln in out.splitlines()}
    failed = 0
    for cmd, expect, what in steps:
        # An expectation is a line, or a tuple of lines any one of which will do.
        missing = [e for e in expect
                   if not (set(e) & lines if isinstance(e, tuple) else e in lines)]
        status = "FAIL" if missing else "ok"
        failed += bool(missing)
        print(f"zkcli[{label}] {status}: {what} ({cmd})"
              + (f": missing {missing}" if missing else ""))

    # A new session: the first one's ephemeral node left with it.
    _, out2 = zkcli(a.classpath, a.server, "", args=("stat", f"{a.root}-eph"))
    ok = f"Node does not exist: {a.root}-eph" in out2
    failed += not ok
    print(f"zkcli[{label}] {'ok' if ok else 'FAIL'}: ephemeral removed when its session closed")

    if failed:
        print(f"--- zkCli output ({label}) ---\n{out}\n--- second session ---\n{out2}")
    total = len(steps) + 1
    print(f"zkcli[{label}]: {total - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
