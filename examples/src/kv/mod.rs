//! The key-value service both `tokio-kv` (with crashguard) and `tokio-kv-plain` (without, the
//! baseline of `benches/kv_throughput.rs`) run; see `tokio_kv.rs` for what it does.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

type Map = Arc<RwLock<HashMap<String, String>>>;

/// A write on its way to the log, with the connection waiting for its acknowledgement.
struct Write {
    key: String,
    value: String,
    done: oneshot::Sender<bool>,
}

/// A future that completes when the service must stop.
pub type StopFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How the service hears that it must stop, and what it arranges for the shutdown: the one
/// thing the two builds of this service (`tokio-kv` with crashguard, `tokio-kv-plain` without)
/// do differently.
pub struct Stopper<'a> {
    /// Completes with the reason, in words, when the service must stop (the accept loop awaits
    /// it).
    pub main: Pin<Box<dyn Future<Output = String> + Send>>,
    /// Makes the future each connection awaits.
    pub conn: Box<dyn Fn() -> StopFuture + Send + Sync>,
    /// Given the readiness file once it exists: arranges for its removal when the shutdown
    /// begins.
    pub on_ready_file: Box<dyn FnOnce(PathBuf) + 'a>,
}

pub struct Options {
    pub addr: String,
    pub data: PathBuf,
    pub previous_json: bool,
}

pub fn options() -> Result<Options, String> {
    let mut o = Options {
        addr: "127.0.0.1:7070".into(),
        data: PathBuf::from("kv-data"),
        previous_json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => o.addr = args.next().ok_or("--addr needs an address")?,
            "--data" => o.data = args.next().ok_or("--data needs a directory")?.into(),
            "--previous-json" => o.previous_json = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Replays the log into a map. A torn last line (the process died mid-append, before the
/// write was acknowledged) is ignored.
fn recover(log: &Path) -> std::io::Result<HashMap<String, String>> {
    let text = match std::fs::read_to_string(log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut map = HashMap::new();
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let mut words = line.split_whitespace();
        if let (Some("SET"), Some(k), Some(v)) = (words.next(), words.next(), words.next()) {
            map.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(map)
}

/// The one writer: appends each batch to the log, syncs it, applies it, then acknowledges it.
/// Ends when every connection (each holds a sender) is gone; returns how many writes it made.
async fn writer(mut rx: mpsc::Receiver<Write>, mut log: tokio::fs::File, map: Map) -> u64 {
    let mut persisted = 0u64;
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut buf = String::new();
        for w in &batch {
            buf.push_str(&format!("SET {} {}\n", w.key, w.value));
        }
        let synced = match log.write_all(buf.as_bytes()).await {
            Ok(()) => log.sync_data().await,
            Err(e) => Err(e),
        };
        if let Err(e) = &synced {
            eprintln!("tokio-kv: cannot persist {} writes: {e}", batch.len());
            tracing::warn!(writes = batch.len(), "log write failed");
        }
        let ok = synced.is_ok();
        if ok {
            let mut m = map.write().unwrap_or_else(|e| e.into_inner());
            for w in &batch {
                m.insert(w.key.clone(), w.value.clone());
            }
            persisted += batch.len() as u64;
        }
        for w in batch.drain(..) {
            let _ = w.done.send(ok);
        }
    }
    persisted
}

/// One connection: serves requests until the client leaves or the shutdown is requested. A
/// request already read is always finished and answered, so every `OK` the client saw is a
/// write that is on disk.
async fn serve(
    stream: TcpStream,
    writes: mpsc::Sender<Write>,
    map: Map,
    stop: StopFuture,
) -> std::io::Result<()> {
    let (read, mut out) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut stop = stop;
    loop {
        let line = tokio::select! {
            // Checked first, so that a client that never pauses cannot keep its connection
            // open past the shutdown. `next_line` is cancellation safe: a half-read line is
            // simply never answered.
            biased;
            _ = &mut stop => return Ok(()),
            line = lines.next_line() => line?,
        };
        let Some(line) = line else { return Ok(()) };
        let mut words = line.split_whitespace();
        let op = line.split_whitespace().next().unwrap_or("");
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("SET"), Some(k), Some(v)) => {
                let (done, acked) = oneshot::channel();
                let w = Write {
                    key: k.to_owned(),
                    value: v.to_owned(),
                    done,
                };
                let ok = writes.send(w).await.is_ok() && acked.await.unwrap_or(false);
                if ok {
                    "OK\n".to_owned()
                } else {
                    "ERR not persisted\n".to_owned()
                }
            }
            (Some("GET"), Some(k), None) => {
                let m = map.read().unwrap_or_else(|e| e.into_inner());
                match m.get(k) {
                    Some(v) => format!("VALUE {v}\n"),
                    None => "NONE\n".to_owned(),
                }
            }
            _ => "ERR expected SET <key> <value> or GET <key>\n".to_owned(),
        };
        // One event per request: with crashguard's `BreadcrumbLayer` each becomes a breadcrumb,
        // so a crash report shows the last requests served.
        tracing::info!(op, "served");
        out.write_all(reply.as_bytes()).await?;
    }
}

/// Serves until `stop.main` completes, then drains: no new connections, every connection
/// finishes the request it serves, the writer syncs the last batch.
pub async fn run(opts: Options, stop: Stopper<'_>) -> Result<(), String> {
    let log_path = opts.data.join("kv.log");
    let map: Map =
        Arc::new(RwLock::new(recover(&log_path).map_err(|e| {
            format!("cannot read {}: {e}", log_path.display())
        })?));
    println!("RECOVERED {}", map.read().map(|m| m.len()).unwrap_or(0));
    let log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let listener = TcpListener::bind(&opts.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.addr))?;

    // A readiness file for a probe; the shutdown hook takes it away first thing, so that the
    // load balancer stops sending while the application drains.
    let ready = opts.data.join("ready");
    std::fs::write(&ready, b"ready\n")
        .map_err(|e| format!("cannot write {}: {e}", ready.display()))?;
    (stop.on_ready_file)(ready);

    let (writes, rx) = mpsc::channel::<Write>(1024);
    let writer = tokio::spawn(writer(rx, log, Arc::clone(&map)));
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("LISTENING {addr}");
    tracing::info!(%addr, "serving");

    let Stopper { main, conn, .. } = stop;
    let mut main = main;
    let mut connections = 0u64;
    let reason = loop {
        tokio::select! {
            reason = &mut main => break reason,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections += 1;
                    let (w, m, s) = (writes.clone(), Arc::clone(&map), conn());
                    tokio::spawn(async move {
                        if let Err(e) = serve(stream, w, m, s).await {
                            eprintln!("tokio-kv: connection: {e}");
                        }
                    });
                }
                // A refused accept (out of descriptors) must not end the service.
                Err(e) => eprintln!("tokio-kv: accept: {e}"),
            },
        }
    };
    println!("DRAINING {reason}");
    // The drain: no new connections; each connection ends after the request it serves, and
    // drops its sender; the writer then has every write, syncs the last batch and returns.
    drop(listener);
    drop(writes);
    let persisted = writer
        .await
        .map_err(|e| format!("the writer failed: {e}"))?;
    let keys = map.read().map(|m| m.len()).unwrap_or(0);
    println!("DRAINED {persisted} writes persisted, {keys} keys, {connections} connections");
    Ok(())
}
