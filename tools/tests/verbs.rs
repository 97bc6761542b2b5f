//! Every ckctl verb against a real, in-process corekeeper: output text and zkCli errors.
//! Each test works under its own top-level node, so tests may run in parallel.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn create_get_set() {
    let mut s = session("");
    assert_eq!(ok(&mut s, "create /cgs hello"), "Created /cgs\n");
    assert_eq!(ok(&mut s, "get /cgs"), "hello\n");
    assert_eq!(fails(&mut s, "create /cgs x"), "Node already exists: /cgs");
    assert_eq!(
        fails(&mut s, "create /cgs/no/child"),
        "Node does not exist: /cgs/no/child"
    );
    assert_eq!(
        fails(&mut s, "get /cgs/none"),
        "Node does not exist: /cgs/none"
    );
    assert_eq!(ok(&mut s, "create /cgs/empty"), "Created /cgs/empty\n");
    let empty = ok(&mut s, "get /cgs/empty");
    assert!(empty == "null\n" || empty == "\n", "{empty:?}");

    let before = ok(&mut s, "get -s /cgs");
    assert!(before.starts_with("hello\ncZxid = 0x"), "{before}");
    assert_eq!(stat_field(&before, "dataVersion"), "0");
    assert_eq!(stat_field(&before, "dataLength"), "5");
    assert_eq!(stat_field(&before, "numChildren"), "1");
    assert!(stat_field(&before, "ctime").contains(" UTC "));
    assert_eq!(before.lines().count(), 12, "data + 11 stat lines: {before}");

    assert_eq!(ok(&mut s, "set /cgs 'new value'"), "");
    let after = ok(&mut s, "get -s /cgs");
    assert!(after.starts_with("new value\n"), "{after}");
    assert_eq!(stat_field(&after, "dataVersion"), "1");
    assert_eq!(stat_field(&after, "cZxid"), stat_field(&before, "cZxid"));
    assert_ne!(stat_field(&after, "mZxid"), stat_field(&before, "mZxid"));

    let set_s = ok(&mut s, "set -s -v 1 /cgs v3");
    assert_eq!(stat_field(&set_s, "dataVersion"), "2");
    assert_eq!(
        fails(&mut s, "set -v 1 /cgs v4"),
        "version No is not valid : /cgs"
    );
    assert_eq!(
        fails(&mut s, "set /cgs/none x"),
        "Node does not exist: /cgs/none"
    );
}

#[test]
fn sequential_ephemeral_container_ttl() {
    let mut s = session("");
    ok(&mut s, "create /seq");
    assert_eq!(
        ok(&mut s, "create -s /seq/n- a"),
        "Created /seq/n-0000000000\n"
    );
    assert_eq!(
        ok(&mut s, "create -s /seq/n- b"),
        "Created /seq/n-0000000001\n"
    );
    assert_eq!(ok(&mut s, "create -s /seq/"), "Created /seq/0000000002\n");

    assert_eq!(ok(&mut s, "create -e /seq/eph x"), "Created /seq/eph\n");
    let mut other = session("");
    let st = ok(&mut other, "stat /seq/eph");
    assert_eq!(
        stat_field(&st, "ephemeralOwner"),
        format!("0x{:x}", s.session_id())
    );
    assert_eq!(
        fails(&mut s, "create /seq/eph/child"),
        "Ephemerals cannot have children: /seq/eph/child"
    );
    let es = ok(&mut s, "create -e -s /seq/e-");
    assert!(es.starts_with("Created /seq/e-00000000"), "{es}");
    s.close();
    // The closed session's ephemerals are gone once the close was answered.
    assert_eq!(
        fails(&mut other, "stat /seq/eph"),
        "Node does not exist: /seq/eph"
    );

    assert_eq!(ok(&mut other, "create -c /seq/box"), "Created /seq/box\n");
    assert_eq!(
        ok(&mut other, "create -t 3600000 /seq/ttl"),
        "Created /seq/ttl\n"
    );
    let ttl_seq = ok(&mut other, "create -s -t 3600000 /seq/ttl-");
    assert!(
        ttl_seq.starts_with("Created /seq/ttl-00000000"),
        "{ttl_seq}"
    );
}

#[test]
fn delete_with_versions() {
    let mut s = session("");
    ok(&mut s, "create /del");
    ok(&mut s, "create /del/a x");
    ok(&mut s, "set /del/a y");
    assert_eq!(
        fails(&mut s, "delete -v 0 /del/a"),
        "version No is not valid : /del/a"
    );
    assert_eq!(fails(&mut s, "delete /del"), "Node not empty: /del");
    assert_eq!(ok(&mut s, "delete -v 1 /del/a"), "");
    assert_eq!(
        fails(&mut s, "delete /del/a"),
        "Node does not exist: /del/a"
    );
    assert_eq!(ok(&mut s, "delete /del"), "");
}

#[test]
fn deleteall_removes_a_subtree() {
    let mut s = session("");
    for p in [
        "/da",
        "/da/a",
        "/da/a/b",
        "/da/a/b/c",
        "/da/d",
        "/da_sibling",
    ] {
        ok(&mut s, &format!("create {p}"));
    }
    // More nodes than one pipeline window, so deleteall refills its window.
    for i in 0..tools::run::PIPELINE_DEPTH_MAX + 44 {
        ok(&mut s, &format!("create /da/d/n{i}"));
    }
    assert_eq!(ok(&mut s, "deleteall /da"), "");
    assert_eq!(fails(&mut s, "stat /da"), "Node does not exist: /da");
    assert_eq!(fails(&mut s, "deleteall /da"), "Node does not exist: /da");
    ok(&mut s, "stat /da_sibling");
}

#[test]
fn ls_plain_stat_and_recursive() {
    let mut s = session("");
    for p in ["/ls", "/ls/b", "/ls/a", "/ls/a/y", "/ls/a/x", "/ls/c"] {
        ok(&mut s, &format!("create {p}"));
    }
    assert_eq!(ok(&mut s, "ls /ls"), "[a, b, c]\n");
    assert_eq!(ok(&mut s, "ls /ls/c"), "[]\n");
    let with_stat = ok(&mut s, "ls -s /ls");
    assert!(with_stat.starts_with("[a, b, c]\ncZxid = "), "{with_stat}");
    assert_eq!(stat_field(&with_stat, "numChildren"), "3");
    assert_eq!(
        ok(&mut s, "ls -R /ls"),
        "/ls\n/ls/a\n/ls/a/x\n/ls/a/y\n/ls/b\n/ls/c\n"
    );
    assert_eq!(
        fails(&mut s, "ls /ls/none"),
        "Node does not exist: /ls/none"
    );
    assert_eq!(
        fails(&mut s, "ls -R /ls/none"),
        "Node does not exist: /ls/none"
    );
    assert!(ok(&mut s, "ls /").contains("ls"));
}

#[test]
fn stat_and_sync() {
    let mut s = session("");
    ok(&mut s, "create /st abc");
    let st = ok(&mut s, "stat /st");
    assert!(st.starts_with("cZxid = 0x"), "{st}");
    assert_eq!(st.lines().count(), 11);
    assert_eq!(stat_field(&st, "dataLength"), "3");
    assert_eq!(stat_field(&st, "ephemeralOwner"), "0x0");
    assert_eq!(
        fails(&mut s, "stat /st/none"),
        "Node does not exist: /st/none"
    );
    assert_eq!(ok(&mut s, "sync /st"), "Sync is OK\n");
    ok(&mut s, "create /st/a");
    ok(&mut s, "create /st/a/b");
    assert_eq!(ok(&mut s, "getAllChildrenNumber /st"), "2\n");
    assert_eq!(
        fails(&mut s, "getAllChildrenNumber /st/none"),
        "Node does not exist: /st/none"
    );
}

#[test]
fn chroot_applies_to_every_path() {
    let mut root = session("");
    ok(&mut root, "create /chr");
    let mut s = session("/chr");
    assert_eq!(ok(&mut s, "create /a x"), "Created /a\n");
    assert_eq!(ok(&mut s, "create -s /a/q- y"), "Created /a/q-0000000000\n");
    assert_eq!(ok(&mut s, "ls /"), "[a]\n");
    assert_eq!(ok(&mut s, "ls -R /"), "/\n/a\n/a/q-0000000000\n");
    assert_eq!(ok(&mut s, "get /a"), "x\n");
    assert_eq!(fails(&mut s, "get /b"), "Node does not exist: /b");
    assert_eq!(ok(&mut root, "get /chr/a"), "x\n");
    assert_eq!(ok(&mut root, "ls /chr/a"), "[q-0000000000]\n");
    ok(&mut s, "create -e /a/eph");
    assert_eq!(ok(&mut s, "getEphemerals /a"), "[/a/eph]\n");
    assert_eq!(ok(&mut s, "getEphemerals"), "[/a/eph]\n");
    assert_eq!(ok(&mut root, "getEphemerals"), "[]\n");

    ok(&mut s, "addWatch -m persistent /a");
    ok(&mut root, "set /chr/a z");
    let mut out = Vec::new();
    s.wait_events(Some(1), &mut out, Some(EVENT_WAIT)).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("WatchedEvent state:SyncConnected type:NodeDataChanged path:/a\n"),
        "{text}"
    );
    ok(&mut s, "deleteall /a");
    assert_eq!(ok(&mut root, "ls /chr"), "[]\n");
}

#[test]
fn set_acl_get_acl_round_trip() {
    let mut s = session("");
    ok(&mut s, "create /acl x");
    assert_eq!(ok(&mut s, "getAcl /acl"), "'world,'anyone\n: cdrwa\n");
    assert_eq!(ok(&mut s, "setAcl /acl world:anyone:cdra"), "");
    assert_eq!(ok(&mut s, "getAcl /acl"), "'world,'anyone\n: cdra\n");
    let with_stat = ok(&mut s, "getAcl -s /acl");
    assert_eq!(stat_field(&with_stat, "aclVersion"), "1");
    assert_eq!(
        fails(&mut s, "setAcl -v 0 /acl world:anyone:cdrwa"),
        "version No is not valid : /acl"
    );
    assert_eq!(
        fails(&mut s, "set /acl y"),
        "Insufficient permission : /acl"
    );
    let set_s = ok(&mut s, "setAcl -s -v 1 /acl world:anyone:cdrwa");
    assert_eq!(stat_field(&set_s, "aclVersion"), "2");
    ok(&mut s, "set /acl y");

    ok(&mut s, "create /acl/r");
    ok(&mut s, "create /acl/r/k");
    ok(&mut s, "setAcl -R /acl/r world:anyone:r");
    assert_eq!(ok(&mut s, "getAcl /acl/r/k"), "'world,'anyone\n: r\n");
    assert_eq!(
        fails(&mut s, "create /acl/r/k2"),
        "Insufficient permission : /acl/r/k2"
    );
    assert_eq!(
        fails(&mut s, "getAcl /acl/none"),
        "Node does not exist: /acl/none"
    );
}

#[test]
fn addauth_and_digest_acl() {
    let id = engine::tree::acl::digest("alice:secret");
    let mut owner = session("");
    ok(&mut owner, "create /dig");
    ok(&mut owner, &format!("create /dig/p data digest:{id}:cdrwa"));
    assert_eq!(
        fails(&mut owner, "get /dig/p"),
        "Insufficient permission : /dig/p"
    );
    // getACL needs READ or ADMIN too (ZooKeeper 3.5+).
    assert_eq!(
        fails(&mut owner, "getAcl /dig/p"),
        "Insufficient permission : /dig/p"
    );

    let mut alice = session("");
    assert_eq!(ok(&mut alice, "addauth digest alice:secret"), "");
    assert_eq!(
        ok(&mut alice, "getAcl /dig/p"),
        format!("'digest,'{id}\n: cdrwa\n")
    );
    assert_eq!(ok(&mut alice, "get /dig/p"), "data\n");
    ok(&mut alice, "set /dig/p new");

    let mut mallory = session("");
    ok(&mut mallory, "addauth digest alice:wrong");
    assert_eq!(
        fails(&mut mallory, "get /dig/p"),
        "Insufficient permission : /dig/p"
    );

    // `auth::perms` grants the creator's own authenticated ids.
    ok(&mut alice, "create /dig/mine x auth::cdrwa");
    assert_eq!(
        ok(&mut alice, "getAcl /dig/mine"),
        format!("'digest,'{id}\n: cdrwa\n")
    );
}

#[test]
fn add_watch_prints_events_as_they_come() {
    let mut w = session("");
    ok(&mut w, "create /aw");
    // Not following (the library's default, and batch mode): addWatch returns once
    // the watch is set.
    assert_eq!(ok(&mut w, "addWatch /aw"), "");
    let mut writer = session("");
    ok(&mut writer, "create /aw/c 1");
    ok(&mut writer, "set /aw/c 2");
    ok(&mut writer, "delete /aw/c");
    let mut out = Vec::new();
    let n = w.wait_events(Some(3), &mut out, Some(EVENT_WAIT)).unwrap();
    assert_eq!(n, 3);
    let text = String::from_utf8(out).unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("WatchedEvent state:SyncConnected type:"))
        .collect();
    assert_eq!(
        kinds,
        [
            "NodeCreated path:/aw/c",
            "NodeDataChanged path:/aw/c",
            "NodeDeleted path:/aw/c"
        ],
        "{text}"
    );
    // Still registered (persistent), and the session still answers requests.
    assert_eq!(ok(&mut w, "ls /aw"), "[]\n");
}

#[test]
fn add_watch_with_event_count_returns_after_n_events() {
    let mut w = session("");
    ok(&mut w, "create /awn");
    let watcher = std::thread::spawn(move || ck(&mut w, "addWatch -m persistent --events 1 /awn"));
    // The watch is set at some point after the thread starts; keep changing the node
    // (bounded) until the watcher has seen one change.
    let mut writer = session("");
    let deadline = std::time::Instant::now() + EVENT_WAIT;
    while !watcher.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "no event within {EVENT_WAIT:?}"
        );
        ok(&mut writer, "set /awn x");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = watcher.join().unwrap().unwrap();
    assert_eq!(
        text,
        "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/awn\n"
    );
}

#[test]
fn one_shot_watch_event_printed_in_batch() {
    let addr = server().to_string();
    let script = "create /bw v\nget -w /bw\nset /bw w\nstat -w /bw\ndelete /bw\n";
    let (status, out, err) = main_with(&["-server", &addr], script);
    assert_eq!((status, err.as_str()), (0, ""), "{out}");
    assert!(out.starts_with("Created /bw\nv\n\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/bw\n"), "{out}");
    assert!(out.ends_with("type:NodeDeleted path:/bw\n"), "{out}");
}

#[test]
fn four_letter_words() {
    let addr = server().to_string();
    let srvr = tools::run::four_letter(&addr, "srvr").unwrap();
    assert!(srvr.starts_with("Zookeeper version: "), "{srvr}");
    assert!(srvr.contains("Mode: standalone"), "{srvr}");
    let (status, mntr, _) = main_with(&["mntr", &addr], "");
    assert_eq!(status, 0);
    assert!(mntr.contains("zk_version\t"), "{mntr}");
    assert!(mntr.contains("zk_znode_count\t"), "{mntr}");
    // No address: the connect string's servers are asked, in order.
    let server_arg = format!("127.0.0.1:1,{addr}");
    let (status, ruok, _) = main_with(&["-server", &server_arg, "ruok"], "");
    assert_eq!((status, ruok.as_str()), (0, "imok\n"));
}

#[test]
fn config_and_reconfig_answer_as_zkcli_does_standalone() {
    // zkCli 3.8 against a standalone ZooKeeper (side by side, by hand): an empty
    // config, its stat all zeros, and reconfig refused (this server runs without
    // reconfigEnabled: disabled; with it, UNIMPLEMENTED).
    let mut s = session("");
    assert_eq!(ok(&mut s, "config"), "\n");
    assert_eq!(ok(&mut s, "config -c"), " \n");
    let with_stat = ok(&mut s, "config -s");
    assert!(with_stat.starts_with("\ncZxid = 0x0\n"), "{with_stat:?}");
    assert_eq!(stat_field(&with_stat, "aclVersion"), "-1");
    assert_eq!(
        fails(&mut s, "reconfig -remove 5"),
        "KeeperErrorCode = Reconfig is disabled"
    );
    let usage = fails(&mut s, "reconfig");
    assert!(usage.starts_with("reconfig [-s] [-v version]"), "{usage}");
    assert_eq!(
        fails(&mut s, "reconfig -v zz -remove 1"),
        "-v must be followed by a long (configuration version)"
    );
    assert!(fails(&mut s, "reconfig -members a -add b").starts_with("Can't use -file or -members"));
}
