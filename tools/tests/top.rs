//! `ckctl top` against a server as deployed by default: `4lw.commands.whitelist` allows
//! only `srvr`, so `mntr` is refused; the admin port's `/metrics` needs no whitelist.

mod common;

use std::net::TcpListener;

use common::*;

#[test]
fn top_says_what_to_enable_or_reads_the_admin_port() {
    let admin = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // No whitelist line: ZooKeeper's default, srvr only.
    let addr = start_with(&format!("adminPort={admin}\n")).to_string();
    let (status, _, err) = main_with(&["-server", &addr, "create", "/top", "x"], "");
    assert_eq!((status, err.as_str()), (0, ""));

    // mntr refused: say so and what to enable, instead of a screen of zeros.
    let (status, out, err) = main_with(&["-server", &addr, "top", "-i", "100", "-n", "1"], "");
    assert_eq!((status, out.as_str()), (1, ""), "{err}");
    assert!(
        err.contains("mntr is not in the server's 4lw.commands.whitelist")
            && err.contains("-a ADMIN_PORT"),
        "{err}"
    );

    // -a PORT: /metrics from the admin port on the server's host. The header names the
    // servers as a plain host:port list.
    let servers = format!("127.0.0.1:1,{addr}");
    let admin = admin.to_string();
    let args = [
        "-server", &servers, "top", "-i", "100", "-n", "1", "-a", &admin,
    ];
    let (status, out, err) = main_with(&args, "");
    assert_eq!((status, err.as_str()), (0, ""), "{out}");
    let mut lines = out.lines();
    let head = lines.next().unwrap();
    assert!(head.starts_with(&format!("{servers}  zxid 0x")), "{out}");
    // 4 system nodes and /top.
    assert!(head.contains("  znodes 5  "), "{out}");
    assert_eq!(
        lines.next(),
        Some("core      req/s   in KiB/s  out KiB/s  busy%  queue  conns")
    );
    assert!(lines.next().unwrap().starts_with("   0 "), "{out}");
    assert!(lines.next().unwrap().starts_with("shard 0: "), "{out}");

    // The same with the admin endpoint named in full.
    let full = format!("127.0.0.1:{admin}");
    let args = ["-server", &addr, "top", "-i", "100", "-n", "1", "-a", &full];
    let (status, out, err) = main_with(&args, "");
    assert_eq!((status, err.as_str()), (0, ""), "{out}");
    assert!(out.starts_with(&format!("{addr}  zxid 0x")), "{out}");
}
