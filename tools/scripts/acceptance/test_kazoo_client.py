"""Acceptance item 2: kazoo 2.11 against a running server (corekeeper or ZooKeeper).

The server address comes from ACCEPT_SERVER (host:port). Every test works in its own
fresh chroot, so tests are independent and can run against a server that is in use.
Waits are always on events with a bounded timeout (WAIT_S_MAX), never guessed sleeps.

Covers: CRUD with versions, ephemeral and sequential nodes, data/child/exists watches,
transactions (commit and all-or-nothing abort), and the recipes Lock, Election, Barrier,
DoubleBarrier, Queue, LockingQueue, Counter and Party.
"""

import os
import threading
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
)
from kazoo.protocol.states import EventType

# Upper bound on any wait for an event, a thread or a connection.
WAIT_S_MAX = 15


@pytest.fixture
def server():
    addr = os.environ.get("ACCEPT_SERVER")
    if not addr:
        pytest.fail("ACCEPT_SERVER (host:port) is not set")
    return addr


@pytest.fixture
def chroot(server):
    root = "/accept-" + uuid.uuid4().hex
    admin = KazooClient(hosts=server, timeout=WAIT_S_MAX)
    admin.start(timeout=WAIT_S_MAX)
    admin.ensure_path(root)
    yield server + root
    admin.delete(root, recursive=True)
    admin.stop()
    admin.close()


@pytest.fixture
def make_client(chroot):
    clients = []

    def make():
        c = KazooClient(hosts=chroot, timeout=WAIT_S_MAX)
        c.start(timeout=WAIT_S_MAX)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.stop()
        c.close()


@pytest.fixture
def zk(make_client):
    return make_client()


def join(thread):
    thread.join(WAIT_S_MAX)
    assert not thread.is_alive(), "thread did not finish in time"


# ------------------------------------------------------------------------- CRUD


def test_crud_and_versions(zk):
    assert zk.create("/a", b"one") == "/a"
    data, stat = zk.get("/a")
    assert data == b"one" and stat.version == 0 and stat.dataLength == 3
    assert stat.ephemeralOwner == 0 and stat.numChildren == 0
    stat = zk.set("/a", b"two", version=0)
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        zk.set("/a", b"three", version=0)
    assert zk.get("/a")[0] == b"two"
    with pytest.raises(NodeExistsError):
        zk.create("/a")
    zk.create("/a/b", b"")
    with pytest.raises(NotEmptyError):
        zk.delete("/a")
    assert zk.get_children("/a") == ["b"]
    assert zk.exists("/a").numChildren == 1
    with pytest.raises(BadVersionError):
        zk.delete("/a/b", version=5)
    zk.delete("/a", recursive=True)
    assert zk.exists("/a") is None
    with pytest.raises(NoNodeError):
        zk.get("/a")


def test_ensure_path_and_empty_data(zk):
    zk.ensure_path("/x/y/z")
    assert zk.exists("/x/y/z") is not None
    assert zk.get("/x/y/z")[0] == b""
    zk.create("/big", b"v" * 100_000)
    assert len(zk.get("/big")[0]) == 100_000


def test_ephemeral_goes_with_session(make_client):
    owner, observer = make_client(), make_client()
    owner.create("/eph", b"e", ephemeral=True)
    stat = observer.exists("/eph")
    assert stat.ephemeralOwner == owner.client_id[0]
    gone = threading.Event()
    observer.exists("/eph", watch=lambda ev: ev.type == EventType.DELETED and gone.set())
    owner.stop()
    assert gone.wait(WAIT_S_MAX), "ephemeral not deleted when its session closed"
    assert observer.exists("/eph") is None


def test_sequential_nodes(zk):
    zk.create("/q")
    names = [zk.create("/q/n-", b"", sequence=True) for _ in range(3)]
    assert names == [f"/q/n-{i:010d}" for i in range(3)]
    e = zk.create("/q/e-", b"", sequence=True, ephemeral=True)
    assert e == "/q/e-0000000003"
    assert sorted(zk.get_children("/q")) == sorted(n.rsplit("/", 1)[1] for n in names + [e])


# ------------------------------------------------------------------------- watches


def test_data_child_and_exists_watches(make_client):
    zk, other = make_client(), make_client()
    zk.create("/w", b"0")
    events = []
    got = {k: threading.Event() for k in ("data", "child", "created", "deleted")}

    def on(kind):
        def cb(ev):
            events.append((kind, ev.type, ev.path))
            got[kind].set()
        return cb

    zk.get("/w", watch=on("data"))
    zk.get_children("/w", watch=on("child"))
    zk.exists("/w/new", watch=on("created"))
    other.set("/w", b"1")
    other.create("/w/new")
    assert all(got[k].wait(WAIT_S_MAX) for k in ("data", "child", "created"))
    zk.exists("/w/new", watch=on("deleted"))
    other.delete("/w/new")
    assert got["deleted"].wait(WAIT_S_MAX)
    chroot_path = "/w"
    assert ("data", EventType.CHANGED, chroot_path) in events
    assert ("child", EventType.CHILD, chroot_path) in events
    assert ("created", EventType.CREATED, "/w/new") in events
    assert ("deleted", EventType.DELETED, "/w/new") in events
    # One-shot: a second change after the watch fired sends nothing more.
    assert len([e for e in events if e[0] == "data"]) == 1


def test_data_watch_recipe(make_client):
    zk, other = make_client(), make_client()
    zk.create("/dw", b"a")
    seen, changed = [], threading.Event()

    @zk.DataWatch("/dw")
    def watch(data, stat):
        seen.append(data)
        if data == b"b":
            changed.set()

    other.set("/dw", b"b")
    assert changed.wait(WAIT_S_MAX)
    assert seen[0] == b"a" and seen[-1] == b"b"


def test_children_watch_recipe(make_client):
    zk, other = make_client(), make_client()
    zk.create("/cw")
    done = threading.Event()

    @zk.ChildrenWatch("/cw")
    def watch(children):
        if sorted(children) == ["a", "b"]:
            done.set()

    other.create("/cw/a")
    other.create("/cw/b")
    assert done.wait(WAIT_S_MAX)


# ------------------------------------------------------------------------- transactions


def test_transaction_commits_all(zk):
    zk.create("/t", b"v0")
    tx = zk.transaction()
    tx.create("/t/a", b"a")
    tx.set_data("/t", b"v1", version=0)
    tx.check("/t/a", 0)
    tx.create("/t/s-", b"", sequence=True)
    results = tx.commit()
    assert results[0] == "/t/a" and results[3] == "/t/s-0000000001"
    assert zk.get("/t")[0] == b"v1"


def test_transaction_is_all_or_nothing(zk):
    zk.create("/t", b"v0")
    tx = zk.transaction()
    tx.create("/t/a", b"a")
    tx.set_data("/t", b"v1", version=7)  # wrong version: the whole transaction fails
    tx.delete("/t")
    results = tx.commit()
    assert isinstance(results[1], BadVersionError)
    assert zk.exists("/t/a") is None
    assert zk.get("/t")[0] == b"v0"


# ------------------------------------------------------------------------- recipes


def test_lock_mutual_exclusion(make_client):
    a, b = make_client(), make_client()
    la, lb = a.Lock("/lock", "a"), b.Lock("/lock", "b")
    assert la.acquire(timeout=WAIT_S_MAX)
    assert not lb.acquire(blocking=False)
    assert lb.contenders() == ["a"]
    got_b = threading.Event()

    def take_b():
        if lb.acquire(timeout=WAIT_S_MAX):
            got_b.set()

    t = threading.Thread(target=take_b)
    t.start()
    la.release()
    join(t)
    assert got_b.is_set()
    lb.release()


def test_lock_released_when_holder_session_ends(make_client):
    a, b = make_client(), make_client()
    assert a.Lock("/lock2").acquire(timeout=WAIT_S_MAX)
    lb = b.Lock("/lock2")
    a.stop()
    assert lb.acquire(timeout=WAIT_S_MAX)
    lb.release()


def test_election_picks_one_leader_then_next(make_client):
    a, b = make_client(), make_client()
    leading, stop_a = threading.Event(), threading.Event()
    b_leading = threading.Event()

    def lead_a():
        leading.set()
        stop_a.wait(WAIT_S_MAX)

    ea, eb = a.Election("/elect", "a"), b.Election("/elect", "b")
    ta = threading.Thread(target=ea.run, args=(lead_a,))
    ta.start()
    assert leading.wait(WAIT_S_MAX)
    tb = threading.Thread(target=eb.run, args=(b_leading.set,))
    tb.start()
    # b is a contender but not the leader while a leads.
    contenders_ready = threading.Event()
    for _ in range(100):
        if len(ea.contenders()) == 2:
            contenders_ready.set()
            break
        contenders_ready.wait(0.1)
    assert ea.contenders() == ["a", "b"]
    assert not b_leading.is_set()
    stop_a.set()
    join(ta)
    assert b_leading.wait(WAIT_S_MAX)
    join(tb)


def test_barrier(make_client):
    a, b = make_client(), make_client()
    barrier = a.Barrier("/barrier")
    barrier.create()
    passed = threading.Event()
    t = threading.Thread(target=lambda: b.Barrier("/barrier").wait(WAIT_S_MAX) and passed.set())
    t.start()
    assert not passed.is_set()
    barrier.remove()
    join(t)
    assert passed.is_set()


def test_double_barrier(make_client):
    clients = [make_client() for _ in range(2)]
    barriers = [c.DoubleBarrier("/double", 2) for c in clients]
    entered = []

    def enter_leave(b):
        b.enter()
        entered.append(b)
        b.leave()

    threads = [threading.Thread(target=enter_leave, args=(b,)) for b in barriers]
    for t in threads:
        t.start()
    for t in threads:
        join(t)
    assert len(entered) == 2


def test_queue_fifo_and_priority(zk):
    q = zk.Queue("/queue")
    for item in (b"one", b"two", b"three"):
        q.put(item)
    q.put(b"urgent", priority=10)
    assert len(q) == 4
    assert [q.get() for _ in range(4)] == [b"urgent", b"one", b"two", b"three"]
    assert q.get() is None


def test_locking_queue(make_client):
    a, b = make_client(), make_client()
    qa, qb = a.LockingQueue("/lq"), b.LockingQueue("/lq")
    qa.put(b"job")
    assert qb.get(timeout=WAIT_S_MAX) == b"job"
    assert qa.get(timeout=0.5) is None  # held by b, not handed out twice
    assert qb.consume()
    assert len(qa) == 0


def test_counter_concurrent(make_client):
    clients = [make_client() for _ in range(3)]
    per_client = 20

    def bump(c):
        counter = c.Counter("/counter")
        for _ in range(per_client):
            counter += 1

    threads = [threading.Thread(target=bump, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        join(t)
    counter = clients[0].Counter("/counter")
    assert counter.value == 3 * per_client
    counter -= 5
    assert counter.value == 3 * per_client - 5
    assert clients[1].Counter("/fcounter", default=0.0).__add__(1.5).value == 1.5


def test_party_membership(make_client):
    a, b = make_client(), make_client()
    pa, pb = a.Party("/party", "a"), b.Party("/party", "b")
    pa.join()
    pb.join()
    assert sorted(pa) == ["a", "b"] and len(pa) == 2
    pb.leave()
    assert list(pa) == ["a"]
    sp = b.ShallowParty("/shallow", "sb")
    sp.join()
    assert list(a.ShallowParty("/shallow")) == ["sb"]
    a.stop()  # a's membership is ephemeral: it leaves with its session
    assert list(b.Party("/party")) == []
