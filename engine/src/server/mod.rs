//! The client-facing server: start-up, listening, connections, four-letter words.
//!
//! [`run`] checks everything that can be checked before serving (configuration,
//! directories, the WAL, the port), then starts one executor per core. An ensemble
//! member also checks its quorum and election ports and its epoch files, and then runs
//! its Zab group on core 0 beside the shard (`runtime::replica`). Core 0 owns
//! shard 0 (the only shard for now) and its [`Driver`]; every core accepts clients.
//! Cross-core traffic is batched: each non-zero core has one uplink (requests, in
//! `Vec`s) to core 0 and one downlink (replies and events) back.

pub mod conn;
pub mod conn_core;
pub mod convert;
pub mod fourlw;
pub mod listen;
pub mod metrics;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::net::TcpListener;

use crate::config::{CORES_MAX, Config};
use crate::runtime::driver::{Driver, Outlet, Recovered, recover};
use crate::runtime::exec::{run_on_cores, usable_cpus};
use crate::runtime::mailbox::Mailbox;
use crate::runtime::msg::{ToConn, ToShard};
use crate::runtime::stats::Stats;
use conn::CoreCtx;
use listen::{ConnLimiter, probe_bind, probe_bind_as, probe_owner};

/// Batches in flight on one cross-core link before the sender waits.
pub const LINK_BATCHES_MAX: usize = 1024;
/// Period of the per-core profile sampler (busy time, queue depth).
pub const PROFILE_SAMPLE_MS: u64 = 100;
/// Messages an uplink carries per cross-core batch.
pub const UPLINK_BATCH_MAX: usize = 1024;

type Up = (SharedSender<Vec<ToShard>>, SharedReceiver<Vec<ToShard>>);
type Down = (SharedSender<Vec<ToConn>>, SharedReceiver<Vec<ToConn>>);

/// Channel ends waiting to be picked up by the executor they belong to.
struct Links {
    up_tx: Vec<Option<SharedSender<Vec<ToShard>>>>,
    up_rx: Vec<Option<SharedReceiver<Vec<ToShard>>>>,
    down_tx: Vec<Option<SharedSender<Vec<ToConn>>>>,
    down_rx: Vec<Option<SharedReceiver<Vec<ToConn>>>>,
}

impl Links {
    fn new(cores: usize) -> Self {
        let (mut up_tx, mut up_rx, mut down_tx, mut down_rx) =
            (vec![None], vec![None], vec![None], vec![None]);
        for _ in 1..cores {
            let (ut, ur): Up = shared_channel::new_bounded(LINK_BATCHES_MAX);
            let (dt, dr): Down = shared_channel::new_bounded(LINK_BATCHES_MAX);
            up_tx.push(Some(ut));
            up_rx.push(Some(ur));
            down_tx.push(Some(dt));
            down_rx.push(Some(dr));
        }
        Links {
            up_tx,
            up_rx,
            down_tx,
            down_rx,
        }
    }
}

/// Everything the executors share, handed to each by index.
struct Shared {
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    limiter: ConnLimiter,
    registry: Arc<Mutex<HashMap<crate::shard::ConnId, (std::net::SocketAddr, i64)>>>,
    links: Mutex<Links>,
    recovered: Mutex<Option<Recovered>>,
    cores: usize,
}

/// The number of executors `cfg` asks for; by default half the usable CPUs (at least
/// one). Today one shard on core 0 executes every request and the other executors only
/// carry sockets to it, so the CPUs beyond that are worth more to the kernel's network
/// stack, the WAL's flush threads and clients on the same machine: on 2 CPUs with the
/// client beside it, a second executor cost 20-25% of get throughput (README,
/// Benchmarks).
pub fn core_count(cfg: &Config) -> usize {
    cfg.cores
        .unwrap_or_else(|| default_cores(usable_cpus().len()))
        .clamp(1, CORES_MAX)
}

/// Executors to run on `cpus` usable CPUs when `cores` is not set.
pub fn default_cores(cpus: usize) -> usize {
    (cpus / 2).clamp(1, CORES_MAX)
}

/// Runs the server until it fails. Start-up errors come back before anything is served.
pub fn run(cfg: Config) -> Result<(), String> {
    let admin = cfg
        .admin_port
        .map(|port| std::net::SocketAddr::new(cfg.client_addr.ip(), port));
    // Ports a live process holds fail at once; a dead one's are waited for only after
    // the recovery, which overlaps the kernel tearing them down.
    probe_owner("client address", cfg.client_addr)?;
    if let Some(admin) = admin {
        probe_owner("admin address", admin)?;
    }
    let peer_ports = match &cfg.ensemble {
        Some(ensemble) => check_ensemble_start(&cfg, ensemble)?,
        None => Vec::new(),
    };
    let recovered = recover(&cfg)?;
    probe_bind(cfg.client_addr)?;
    if let Some(admin) = admin {
        probe_bind_as("admin address", admin)?;
    }
    for (what, addr) in peer_ports {
        probe_bind_as(what, addr)?;
    }
    let cores = core_count(&cfg);
    let spin_us = cfg.spin_before_park_us.unwrap_or_else(|| {
        crate::runtime::exec::spin_before_park_us_default(cfg.ensemble.is_some())
    });
    let shared = Arc::new(Shared {
        limiter: ConnLimiter::new(cfg.max_client_cnxns, cfg.max_cnxns),
        cfg: Arc::new(cfg),
        stats: Arc::new(Stats::new(cores)),
        registry: Arc::new(Mutex::new(HashMap::new())),
        links: Mutex::new(Links::new(cores)),
        recovered: Mutex::new(Some(recovered)),
        cores,
    });
    tracing::info!(addr = %shared.cfg.client_addr, cores, spin_us, "corekeeper serving");
    let results = run_on_cores(cores, spin_us, move |i| {
        let shared = shared.clone();
        async move {
            let result = core_main(i, shared).await;
            if let Err(e) = &result {
                // The other cores would wait for this one forever: stop the process.
                eprintln!("corekeeper: {e}");
                std::process::exit(1);
            }
            result
        }
    })
    .map_err(|e| e.to_string())?;
    results.into_iter().collect()
}

/// What an ensemble member can check before replicating: no live process holds its
/// quorum and election ports (ZooKeeper binds them at start too; the caller waits out
/// a dead one's after the recovery) and its epoch files are readable. Returns the
/// ports to bind.
fn check_ensemble_start(
    cfg: &Config,
    ensemble: &crate::config::ensemble::Ensemble,
) -> Result<Vec<(&'static str, std::net::SocketAddr)>, String> {
    let mut ports = Vec::new();
    let me = ensemble.me();
    // ZooKeeper's quorumListenOnAllIPs binds the peer ports on every address.
    let all_ips = cfg
        .passthrough
        .get("quorumListenOnAllIPs")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    for (what, addr) in [
        ("quorum address", &me.quorum),
        ("election address", &me.election),
    ] {
        let resolved = addr
            .resolve()
            .map_err(|e| format!("{what} {addr} ({}): {e}", me.key()))?;
        let bind = if all_ips {
            std::net::SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port)
        } else {
            resolved
        };
        probe_owner(what, bind)?;
        ports.push((what, bind));
    }
    let storage = Arc::new(wal::io::OsStorage);
    crate::runtime::epochs::EpochFiles::open(storage, &cfg.data_dir).map_err(|e| e.to_string())?;
    Ok(ports)
}

async fn core_main(i: usize, shared: Arc<Shared>) -> Result<(), String> {
    let inbox = Rc::new(Mailbox::new());
    let ctx = Rc::new(CoreCtx::new(
        i as u16,
        shared.cfg.clone(),
        shared.stats.clone(),
        inbox.clone(),
        shared.limiter.clone(),
        shared.registry.clone(),
    ));
    let listener = listen::bind_listener(shared.cfg.client_addr)
        .map_err(|e| format!("core {i}: cannot listen on {}: {e}", shared.cfg.client_addr))?;
    if let Some(pid) = listen::foreign_listeners(shared.cfg.client_addr).first() {
        return Err(format!(
            "client address {} is already in use by another process (pid {pid})",
            shared.cfg.client_addr
        ));
    }
    let driver = if i == 0 {
        Some(start_shard(&shared, &ctx, inbox).await?)
    } else {
        start_links(i, &shared, &ctx, inbox).await
    };
    if i == 0
        && let Some(port) = shared.cfg.admin_port
    {
        let addr = std::net::SocketAddr::new(shared.cfg.client_addr.ip(), port);
        let admin = listen::bind_listener(addr)
            .map_err(|e| format!("cannot listen on admin address {addr}: {e}"))?;
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
        glommio::spawn_local(metrics::serve(admin, shared.stats.clone())).detach();
    }
    glommio::spawn_local(sample_core(ctx.clone())).detach();
    let accept = glommio::spawn_local(accept_loop(listener, ctx));
    match driver {
        Some(d) => {
            let result = d.await;
            if let Err(e) = &result {
                tracing::error!("{e}");
                // Stop at once: the WAL can no longer promise what replies would claim.
                std::process::exit(2);
            }
            result
        }
        None => {
            accept.await;
            Ok(())
        }
    }
}

/// Every [`PROFILE_SAMPLE_MS`], publishes this core's busy time and queue depth.
async fn sample_core(ctx: Rc<CoreCtx>) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        glommio::timer::sleep(std::time::Duration::from_millis(PROFILE_SAMPLE_MS)).await;
        // glommio hands out the time since the previous call (and resets it).
        let busy = glommio::executor().executor_stats().total_runtime();
        let me = ctx.my_stats();
        me.busy_us.fetch_add(busy.as_micros() as u64, Relaxed);
        me.queue_depth.store(ctx.shard.len() as u64, Relaxed);
    }
}

async fn accept_loop(listener: TcpListener, ctx: Rc<CoreCtx>) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(conn::serve(stream, ctx.clone())).detach();
            }
            Err(e) => {
                tracing::warn!(core = ctx.core, "accept failed: {e}");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Sends the driver's output: to local connections directly, to other cores through
/// one forwarding task per link (so batches keep their order).
struct CoreOutlet {
    local: Rc<CoreCtx>,
    remote: Vec<Option<Rc<Mailbox<Vec<ToConn>>>>>,
}

impl Outlet for CoreOutlet {
    fn send(&self, core: usize, msgs: Vec<ToConn>) {
        match self.remote.get(core).and_then(Option::as_ref) {
            Some(link) => link.push(msgs),
            None => self.local.dispatch(msgs),
        }
    }
}

async fn start_shard(
    shared: &Arc<Shared>,
    ctx: &Rc<CoreCtx>,
    inbox: Rc<Mailbox<ToShard>>,
) -> Result<glommio::Task<Result<(), String>>, String> {
    let rec = shared
        .recovered
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or("shard 0 started twice")?;
    let mut remote = vec![None];
    for c in 1..shared.cores {
        let (up_rx, down_tx) = {
            let mut links = shared.links.lock().unwrap_or_else(|p| p.into_inner());
            (links.up_rx[c].take(), links.down_tx[c].take())
        };
        let (Some(up_rx), Some(down_tx)) = (up_rx, down_tx) else {
            return Err(format!("link {c} missing"));
        };
        let (up_rx, down_tx) = (up_rx.connect().await, down_tx.connect().await);
        let ingress = inbox.clone();
        glommio::spawn_local(async move {
            while let Some(batch) = up_rx.recv().await {
                batch.into_iter().for_each(|m| ingress.push(m));
            }
        })
        .detach();
        let out = Rc::new(Mailbox::<Vec<ToConn>>::new());
        let pending = out.clone();
        glommio::spawn_local(async move {
            let mut batches = Vec::new();
            while pending.recv_batch(&mut batches, 64).await {
                for b in batches.drain(..) {
                    if down_tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
        })
        .detach();
        remote.push(Some(out));
    }
    let ticker = inbox.clone();
    let period = Driver::<CoreOutlet>::tick_period(&shared.cfg);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(period).await;
            ticker.push(ToShard::Tick);
        }
    })
    .detach();
    let outlet = CoreOutlet {
        local: ctx.clone(),
        remote,
    };
    let mut driver = Driver::new(
        &shared.cfg,
        rec,
        inbox.clone(),
        outlet,
        shared.cores,
        shared.stats.clone(),
    );
    if let Some(ens) = &shared.cfg.ensemble {
        let (ens, version) = driver.adopt_config(ens, &shared.cfg.data_dir)?;
        let replica = crate::runtime::replica::start(
            &shared.cfg,
            &ens,
            version,
            driver.logged_zxid(),
            inbox,
        )?;
        driver = driver.with_replica(replica);
    }
    Ok(glommio::spawn_local(driver.run()))
}

async fn start_links(
    i: usize,
    shared: &Arc<Shared>,
    ctx: &Rc<CoreCtx>,
    uplink: Rc<Mailbox<ToShard>>,
) -> Option<glommio::Task<Result<(), String>>> {
    let (up_tx, down_rx) = {
        let mut links = shared.links.lock().unwrap_or_else(|p| p.into_inner());
        (links.up_tx[i].take()?, links.down_rx[i].take()?)
    };
    let (up_tx, down_rx) = (up_tx.connect().await, down_rx.connect().await);
    glommio::spawn_local(async move {
        let mut batch = Vec::new();
        while uplink.recv_batch(&mut batch, UPLINK_BATCH_MAX).await {
            if up_tx.send(std::mem::take(&mut batch)).await.is_err() {
                return;
            }
        }
    })
    .detach();
    let local = ctx.clone();
    glommio::spawn_local(async move {
        while let Some(batch) = down_rx.recv().await {
            local.dispatch(batch);
        }
    })
    .detach();
    None
}
