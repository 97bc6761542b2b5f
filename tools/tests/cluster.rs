//! `ckctl cluster` against real processes (corekeeper run as `ckjepsen serve`): up
//! elects a leader, status shows every member, a killed leader is replaced and comes
//! back as a follower on restart, a paused member shows as paused and serves again
//! once resumed, a voter and an observer are added and the leader removed by
//! reconfig, down stops them all.

use std::path::Path;

fn ckctl(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = tools::cluster::main(&args, &mut out, &mut err);
    (
        status,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn ok(args: &[&str]) -> String {
    let (status, out, err) = ckctl(args);
    assert_eq!(status, 0, "ckctl cluster {args:?}: {err}");
    out
}

fn modes(status: &str) -> Vec<(String, String)> {
    status
        .lines()
        .skip(1)
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[2].to_string())
        })
        .collect()
}

fn leader(status: &str) -> String {
    let m = modes(status);
    let leaders: Vec<&(String, String)> = m.iter().filter(|(_, m)| m == "leader").collect();
    assert_eq!(leaders.len(), 1, "{status}");
    leaders[0].0.clone()
}

struct Down<'a>(&'a Path);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let d = self.0.display().to_string();
        let _ = ckctl(&["down", "--dir", &d]);
    }
}

#[test]
fn a_local_cluster_comes_up_fails_over_and_goes_down() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ckctl-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.display().to_string();
    let bin = env!("CARGO_BIN_EXE_ckjepsen");
    let up = ok(&["up", "--dir", &d, "--bin", bin, "--bin-arg", "serve"]);
    let _down = Down(&dir);
    let first = leader(&up);
    assert_eq!(modes(&up).len(), 3, "{up}");
    assert!(up.contains("connect string: 127.0.0.41:"), "{up}");

    let killed = ok(&["kill", &first, "--dir", &d]);
    assert!(killed.contains("down"), "{killed}");
    // The other two elect a new leader (a newer epoch): the old one then cannot win
    // an election on its return (with equal histories the highest id would).
    let start = std::time::Instant::now();
    loop {
        let s = ok(&["status", "--dir", &d]);
        if modes(&s).iter().filter(|(_, m)| m == "leader").count() == 1 {
            break;
        }
        assert!(start.elapsed().as_secs() < 60, "no new leader: {s}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let back = ok(&["restart", &first, "--dir", &d]);
    let second = leader(&back);
    assert_ne!(
        second, first,
        "the restarted member rejoins as a follower: {back}"
    );

    let follower = ["1", "2", "3"].into_iter().find(|n| *n != second).unwrap();
    let paused = ok(&["pause", follower, "--dir", &d]);
    assert!(paused.contains("stopped (SIGSTOP)"), "{paused}");
    ok(&["resume", follower, "--dir", &d]);

    // Membership by reconfig: a fourth voter joins (and follows); the leader is
    // removed and the other three elect one; an observer joins.
    let grown = ok(&["add", "--dir", &d]);
    assert_eq!(modes(&grown).len(), 4, "{grown}");
    assert_eq!(modes(&grown)[3], ("4".into(), "follower".into()), "{grown}");
    let lead = leader(&grown);
    let shrunk = ok(&["remove", &lead, "--dir", &d]);
    assert_eq!(modes(&shrunk).len(), 3, "{shrunk}");
    assert_ne!(leader(&shrunk), lead, "{shrunk}");
    let watched = ok(&["add", "--observer", "--dir", &d]);
    assert_eq!(
        modes(&watched)[3],
        ("5".into(), "observer".into()),
        "{watched}"
    );

    let (status, _, err) = ckctl(&["up", "--dir", &d, "--bin", bin]);
    assert_eq!(status, 1);
    assert!(err.contains("already runs"), "{err}");
    ok(&["down", "--dir", &d]);
    let after = ok(&["status", "--dir", &d]);
    assert!(modes(&after).iter().all(|(_, m)| m == "down"), "{after}");
    let (status, _, err) = ckctl(&["kill", "--dir", &d]);
    assert_eq!(status, 2, "{err}");
    ok(&["down", "--purge", "--dir", &d]);
    assert!(!dir.exists());
}
