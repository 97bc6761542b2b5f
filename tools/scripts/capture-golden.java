// Drives ZooKeeper's own Java client (the library zkCli uses) through every client op,
// for tools/scripts/capture-golden.py, which records the frames through a proxy.
//
// Usage: java -cp <zookeeper jars>:<dir> GoldenDriver <host:port> <scenario>
// Scenarios: "all" (every op, then a reconnect with persistent watches: setWatches2),
//            "setwatches" (one-shot watches only, then a reconnect: setWatches).
// A reconnect is requested by printing "DROP" on stdout; the capture script closes the
// proxied connection, waits for the client to reconnect, and answers "GO" on stdin.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZKUtil;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;

class GoldenDriver {
    static final Semaphore connected = new Semaphore(0);
    static final BufferedReader stdin =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));

    static final Watcher watcher = (WatchedEvent e) -> {
        System.err.println("event " + e);
        if (e.getType() == Watcher.Event.EventType.None
            && e.getState() == Watcher.Event.KeeperState.SyncConnected) {
            connected.release();
        }
    };

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    interface Call {
        void run() throws Exception;
    }

    static void tryCall(Call c) {
        try {
            c.run();
        } catch (KeeperException e) {
            System.err.println("keeper error (captured): " + e.code());
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    static void reconnect() throws Exception {
        System.out.println("DROP");
        System.out.flush();
        String line = stdin.readLine();
        if (!"GO".equals(line)) {
            throw new IllegalStateException("capture script said " + line);
        }
        if (!connected.tryAcquire(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("no reconnect");
        }
    }

    public static void main(String[] args) throws Exception {
        ZooKeeper zk = new ZooKeeper(args[0], 6000, watcher);
        if (!connected.tryAcquire(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("not connected");
        }
        if (args[1].equals("all")) {
            all(zk);
        } else {
            setWatches(zk);
        }
        zk.close();
        System.out.println("DONE");
    }

    static void all(ZooKeeper zk) throws Exception {
        List<ACL> open = ZooDefs.Ids.OPEN_ACL_UNSAFE;
        Stat stat = new Stat();
        zk.create("/g", b("hello"), open, CreateMode.PERSISTENT);
        zk.create("/g/seq-", null, open, CreateMode.EPHEMERAL_SEQUENTIAL);
        zk.create("/g/c2", new byte[0], open, CreateMode.PERSISTENT, stat);
        zk.create("/g/cont", b("c"), open, CreateMode.CONTAINER, stat);
        zk.create("/g/ttl", b("t"), open, CreateMode.PERSISTENT_WITH_TTL, stat, 60000);
        tryCall(() -> zk.create("/g", b("dup"), open, CreateMode.PERSISTENT));
        tryCall(() -> zk.create("/nope/x", b("x"), open, CreateMode.PERSISTENT, stat));
        zk.exists("/g", true);
        zk.exists("/missing", true);
        zk.getData("/g", true, stat);
        tryCall(() -> zk.getData("/missing", false, null));
        zk.getData("/g/c2", false, null);
        zk.setData("/g", b("world"), -1);
        tryCall(() -> zk.setData("/g", b("stale"), 42));
        zk.getChildren("/g", true);
        zk.getChildren("/g", false, stat);
        zk.create("/g/kid", b("k"), open, CreateMode.PERSISTENT);
        zk.getAllChildrenNumber("/g");
        zk.getEphemerals("/g");
        zk.getEphemerals();
        zk.getACL("/g", stat);
        zk.setACL("/g/c2", ZooDefs.Ids.READ_ACL_UNSAFE, -1);
        tryCall(() -> zk.setACL("/g/c2", open, 7));
        CountDownLatch synced = new CountDownLatch(1);
        zk.sync("/g", (rc, path, ctx) -> synced.countDown(), null);
        synced.await(10, TimeUnit.SECONDS);
        zk.addAuthInfo("digest", b("user:pass"));
        zk.whoAmI();
        zk.create("/g/secret", b("s"), ZooDefs.Ids.CREATOR_ALL_ACL, CreateMode.PERSISTENT);
        zk.getACL("/g/secret", stat);
        zk.setACL("/g/secret",
            Arrays.asList(new ACL(ZooDefs.Perms.ALL, new Id("world", "anyone"))), -1);
        zk.multi(Arrays.asList(
            Op.create("/g/m1", b("1"), open, CreateMode.PERSISTENT),
            Op.create("/g/m2", b("2"), open, CreateMode.PERSISTENT_SEQUENTIAL),
            Op.setData("/g/m1", b("11"), 0),
            Op.check("/g", 1),
            Op.delete("/g/m1", -1)));
        tryCall(() -> zk.multi(Arrays.asList(
            Op.create("/g/m3", b("3"), open, CreateMode.PERSISTENT),
            Op.check("/g", 99),
            Op.delete("/g/kid", -1))));
        zk.multi(Arrays.asList(
            Op.getData("/g"),
            Op.getChildren("/g"),
            Op.getData("/missing")));
        zk.addWatch("/g", AddWatchMode.PERSISTENT_RECURSIVE);
        zk.addWatch("/g/c2", AddWatchMode.PERSISTENT);
        zk.setData("/g/kid", b("kk"), -1);
        zk.exists("/g/kid", watcher);
        tryCall(() -> zk.removeWatches("/g/kid", watcher, Watcher.WatcherType.Data, false));
        tryCall(() -> zk.removeWatches("/g/kid", watcher, Watcher.WatcherType.Data, false));
        tryCall(() -> zk.removeAllWatches("/g/c2", Watcher.WatcherType.Any, false));
        tryCall(() -> zk.removeAllWatches("/g/c2", Watcher.WatcherType.Any, false));
        // Idle long enough for a ping (a third of the negotiated timeout).
        Thread.sleep(2500);
        reconnect();
        zk.setData("/g/kid", b("after-reconnect"), -1);
        zk.delete("/g/kid", -1);
        ZKUtil.deleteRecursive(zk, "/g");
    }

    static void setWatches(ZooKeeper zk) throws Exception {
        List<ACL> open = ZooDefs.Ids.OPEN_ACL_UNSAFE;
        zk.create("/w", b("w"), open, CreateMode.PERSISTENT);
        zk.getData("/w", true, null);
        zk.getChildren("/w", true);
        zk.exists("/w/later", true);
        reconnect();
        zk.create("/w/later", b("l"), open, CreateMode.PERSISTENT);
        zk.setData("/w", b("changed"), -1);
        zk.delete("/w/later", -1);
        zk.delete("/w", -1);
    }
}
