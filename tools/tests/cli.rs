//! The whole program: one-shot commands, batch mode, exit statuses, server fail-over,
//! and the `ckctl` binary itself.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn one_shot_commands_and_exit_statuses() {
    let addr = server().to_string();
    let (status, out, err) = main_with(&["-server", &addr, "create", "/os", "v 1"], "");
    assert_eq!(
        (status, out.as_str(), err.as_str()),
        (0, "Created /os\n", "")
    );
    let (status, out, _) = main_with(&["-server", &addr, "get", "/os"], "");
    assert_eq!((status, out.as_str()), (0, "v 1\n"));
    let (status, out, err) = main_with(&["-server", &addr, "get", "/os/none"], "");
    assert_eq!(
        (status, out.as_str(), err.as_str()),
        (1, "", "Node does not exist: /os/none\n")
    );
    let (status, _, err) = main_with(&["-server", &addr, "get", "os"], "");
    assert_eq!(
        (status, err.as_str()),
        (2, "Path must start with / character\n")
    );
    let (status, _, err) = main_with(&["-server", &addr, "frob"], "");
    assert_eq!(status, 2);
    assert!(
        err.starts_with("unknown command \"frob\"\nckctl [-server"),
        "{err}"
    );
    let (status, out, _) = main_with(&["help"], "");
    assert_eq!(status, 0);
    assert!(out.contains("deleteall path"), "{out}");
}

#[test]
fn servers_tried_in_order_with_chroot() {
    let addr = server().to_string();
    let (status, _, err) = main_with(&["-server", &addr, "create", "/fo"], "");
    assert_eq!((status, err.as_str()), (0, ""));
    // Port 1 refuses; the second server is used, and the chroot applies.
    let conn = format!("127.0.0.1:1,{addr}/fo");
    let (status, out, err) = main_with(&["-server", &conn, "create", "/x", "in-chroot"], "");
    assert_eq!(
        (status, out.as_str(), err.as_str()),
        (0, "Created /x\n", "")
    );
    let (_, out, _) = main_with(&["-server", &addr, "get", "/fo/x"], "");
    assert_eq!(out, "in-chroot\n");
    let (status, _, err) = main_with(&["-server", "127.0.0.1:1", "ls", "/"], "");
    assert_eq!(status, 1);
    assert!(
        err.starts_with("could not connect to any server: 127.0.0.1:1"),
        "{err}"
    );
}

#[test]
fn batch_mode_runs_every_line_and_reports_failures() {
    let addr = server().to_string();
    let script = "\
# a comment, then a blank line

create /bm 'two words'
get /bm
create /bm again
ls /bm
set -v 7 /bm x
addauth digest u:p
create /bm/c \"q\" auth::cdrwa
getAcl /bm/c
quit
get /never-run
";
    let (status, out, err) = main_with(&["-server", &addr], script);
    let id = engine::tree::acl::digest("u:p");
    assert_eq!(
        out,
        format!("Created /bm\ntwo words\n[]\nCreated /bm/c\n'digest,'{id}\n: cdrwa\n")
    );
    assert_eq!(
        err,
        "Node already exists: /bm\nversion No is not valid : /bm\n"
    );
    assert_eq!(status, 1, "a failed line makes the status non-zero");

    let (status, out, err) = main_with(&["-server", &addr], "get /bm\nbad 'quote\n");
    assert_eq!((status, out.as_str()), (1, "two words\n"));
    assert!(err.starts_with("unterminated ' quote"), "{err}");
}

#[test]
fn auth_flag_applies_before_the_command() {
    let addr = server().to_string();
    let id = engine::tree::acl::digest("bob:pw");
    let acl = format!("digest:{id}:cdrwa");
    let (status, _, err) = main_with(&["-server", &addr, "create", "/af", "s", &acl], "");
    assert_eq!((status, err.as_str()), (0, ""));
    let (status, _, err) = main_with(&["-server", &addr, "get", "/af"], "");
    assert_eq!(
        (status, err.as_str()),
        (1, "Insufficient permission : /af\n")
    );
    let (status, out, _) = main_with(
        &["-server", &addr, "--auth", "digest:bob:pw", "get", "/af"],
        "",
    );
    assert_eq!((status, out.as_str()), (0, "s\n"));
}

#[test]
fn the_binary_runs_a_command_and_a_batch() {
    let addr = server().to_string();
    let bin = env!("CARGO_BIN_EXE_ckctl");
    let out = Command::new(bin)
        .args(["-server", &addr, "create", "/bin", "b"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Created /bin\n");

    let mut child = Command::new(bin)
        .args(["-server", &addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"get /bin\ndelete /bin\nstat /bin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Node does not exist: /bin\n"
    );
}

#[test]
fn the_binary_follows_add_watch_until_killed() {
    let addr = server().to_string();
    let mut s = session("");
    ok(&mut s, "create /follow");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ckctl"))
        .args(["-server", &addr, "addWatch", "/follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Arc::new(Mutex::new(child));
    let seen = Arc::new(AtomicBool::new(false));
    // Keep creating children until the watcher printed one event; past the deadline,
    // kill it so the read below ends (and the test fails) instead of hanging.
    let writer = {
        let (child, seen) = (child.clone(), seen.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + EVENT_WAIT;
            let mut i = 0;
            while !seen.load(Ordering::SeqCst) && Instant::now() < deadline {
                ok(&mut s, &format!("create /follow/c{i}"));
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.lock().unwrap().kill();
        })
    };
    let mut event = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("WatchedEvent") {
            event = Some(line);
            seen.store(true, Ordering::SeqCst);
            break;
        }
    }
    writer.join().unwrap();
    let _ = child.lock().unwrap().wait();
    let event = event.expect("ckctl addWatch printed no event");
    assert!(
        event.starts_with("WatchedEvent state:SyncConnected type:NodeCreated path:/follow/c"),
        "{event}"
    );
}
