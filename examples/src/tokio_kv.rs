//! A tokio service that owns its drain: a small key-value store over TCP whose writes are
//! acknowledged only once they are applied and on disk, and which loses none of them on SIGTERM.
//!
//! Protocol, one line per request: `SET <key> <value>` → `OK`, `GET <key>` → `VALUE <value>` or
//! `NONE`. Keys and values are single words. Writes go through one writer task that appends them
//! to `DATA_DIR/kv.log`, `fdatasync`s the batch, applies it to the map and only then answers
//! `OK` (group commit: one sync for every write that arrived meanwhile). A restart replays the
//! log.
//!
//! On SIGTERM (or SIGINT, SIGHUP) crashguard tells the application through
//! [`crashguard::ShutdownSignal::wait_tokio`] (the accept loop) and
//! [`crashguard::ShutdownSignal::wait_async`] (each connection), and the application drains in
//! async code:
//!
//! 1. the accept loop stops; every connection finishes the request it is serving, then closes;
//! 2. once the last connection is gone the writer has every write, syncs them and stops;
//! 3. `main` returns through [`crashguard::Guard::shutdown`] and the process exits 0.
//!
//! Because `main` listens, crashguard does not end the process when its hooks are done (here
//! one hook removes the readiness file), only when `main` does — or at the grace deadline.
//! The next start says how the previous run ended.
//!
//! ```text
//! cargo run -p crashguard-examples --bin tokio-kv -- --data /tmp/kv --addr 127.0.0.1:7070
//! printf 'SET a 1\nGET a\n' | nc -q1 127.0.0.1 7070
//! kill -TERM <pid>; cargo run -p crashguard-examples --bin tokio-kv -- --data /tmp/kv
//! ```
//!
//! Options: `--addr ADDR` (default `127.0.0.1:7070`; port 0 picks one), `--data DIR` (default
//! `./kv-data`; the report directory is `DIR/crash`), `--previous-json` (also print the
//! previous run's report as one `PREVIOUS <json>` line).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crashguard::{Config, ExitCode, ShutdownSignal};
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

struct Options {
    addr: String,
    data: PathBuf,
    previous_json: bool,
}

fn options() -> Result<Options, String> {
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
            crashguard::breadcrumb("log write failed");
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
    shutdown: ShutdownSignal,
) -> std::io::Result<()> {
    let (read, mut out) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut stop = std::pin::pin!(shutdown.wait_async());
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
        out.write_all(reply.as_bytes()).await?;
    }
}

async fn run(opts: Options, guard: &crashguard::Guard) -> Result<(), String> {
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
    guard.on_shutdown("mark not ready", move || {
        let _ = std::fs::remove_file(&ready);
    });

    let (writes, rx) = mpsc::channel::<Write>(1024);
    let writer = tokio::spawn(writer(rx, log, Arc::clone(&map)));
    let shutdown = guard.shutdown_signal();
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("LISTENING {addr}");
    crashguard::breadcrumb("serving");

    // `wait_tokio` (feature `tokio`): the runtime's reactor watches crashguard's signal pipe,
    // so SIGTERM wakes this task straight from the signal handler. The connections below use
    // `wait_async`, which the request's publication wakes: one registration with the reactor
    // is enough, not one per connection.
    let mut stop = std::pin::pin!(shutdown.wait_tokio());
    let mut connections = 0u64;
    let request = loop {
        tokio::select! {
            request = &mut stop => break request,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections += 1;
                    let (w, m, s) = (writes.clone(), Arc::clone(&map), shutdown.clone());
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
    println!("DRAINING {}", request.reason);
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

fn main() -> std::process::ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tokio-kv: {e}");
            return std::process::ExitCode::from(64);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&opts.data) {
        eprintln!("tokio-kv: cannot create {}: {e}", opts.data.display());
        return std::process::ExitCode::from(73);
    }
    // Installed before the runtime starts, so its worker threads exist under crashguard.
    let guard = match Config::new("tokio-kv")
        .report_dir(opts.data.join("crash"))
        .install()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("tokio-kv: cannot install crashguard: {e}");
            return std::process::ExitCode::from(70);
        }
    };
    if let Some(report) = guard.previous_run() {
        println!("previous run: {report}");
        if opts.previous_json {
            println!(
                "PREVIOUS {}",
                serde_json::to_string(report).unwrap_or_default()
            );
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokio-kv: cannot start the runtime: {e}");
            return guard.shutdown(unavailable());
        }
    };
    let result = runtime.block_on(run(opts, &guard));
    // Every task is done or parked on a closed socket; do not wait for stragglers.
    runtime.shutdown_background();
    // The application's drain is over: run what is left of the shutdown and return its status
    // (0 after a completed shutdown), so that main's own destructors still run. A service that
    // could not start (the port is taken, the log unreadable) exits 69, EX_UNAVAILABLE, which
    // the next run reports as `exit` with that status.
    match result {
        Ok(()) => guard.shutdown(ExitCode::Ok),
        Err(e) => {
            eprintln!("tokio-kv: {e}");
            guard.shutdown(unavailable())
        }
    }
}

/// The application's own exit code for "cannot serve": 69 (`EX_UNAVAILABLE`).
fn unavailable() -> ExitCode {
    ExitCode::app(69).unwrap_or(ExitCode::Ok)
}
