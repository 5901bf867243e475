//! The tokio example under concurrent load, stopped with SIGTERM mid-load: every write the
//! service acknowledged must have been applied and persisted before it exited 0, and the next
//! run must read them back and report the clean shutdown with its sender and hooks.
//!
//! Lives in the examples package because Cargo sets `CARGO_BIN_EXE_tokio-kv` only here.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use crashguard_tests::{Child, TempDir};

const CLIENTS: usize = 8;
/// Acknowledged writes (over all clients) before the SIGTERM: the service is busy by then.
const BEFORE_SIGTERM: usize = 300;

/// A started service: the previous run's report (if one was printed), the number of keys it
/// recovered from the log, and its address.
struct Started {
    child: Child,
    previous: Option<serde_json::Value>,
    recovered: usize,
    addr: String,
}

/// Starts the service on `data`; `after_a_run` says whether a previous run's report is due.
fn start(data: &std::path::Path, after_a_run: bool) -> Started {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokio-kv"));
    cmd.arg("--data")
        .arg(data)
        .args(["--addr", "127.0.0.1:0", "--previous-json"]);
    let mut child = Child::start(cmd);
    // The service prints these in this order.
    let previous = after_a_run
        .then(|| serde_json::from_str(&child.expect_line("PREVIOUS")).expect("the report as JSON"));
    let recovered = child.expect_line("RECOVERED").parse().expect("a count");
    let addr = child.expect_line("LISTENING");
    Started {
        child,
        previous,
        recovered,
        addr,
    }
}

/// One request, one reply line; `None` once the service has closed the connection.
fn request(conn: &mut BufReader<TcpStream>, line: &str) -> Option<String> {
    conn.get_mut().write_all(line.as_bytes()).ok()?;
    let mut reply = String::new();
    match conn.read_line(&mut reply) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(reply.trim_end().to_owned()),
    }
}

/// A client that writes `c<id>-<n> v<n>` until the service closes its connection; returns the
/// writes that were acknowledged with `OK`.
fn client(addr: String, id: usize, acked: Arc<AtomicUsize>) -> Vec<(String, String)> {
    let Ok(stream) = TcpStream::connect(&addr) else {
        return Vec::new();
    };
    let mut conn = BufReader::new(stream);
    let mut mine = Vec::new();
    for n in 0u64.. {
        let (k, v) = (format!("c{id}-{n}"), format!("v{n}"));
        match request(&mut conn, &format!("SET {k} {v}\n")).as_deref() {
            Some("OK") => {
                mine.push((k, v));
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Some(other) => panic!("unexpected reply {other:?}"),
            None => break,
        }
    }
    mine
}

#[test]
fn sigterm_under_load_loses_no_acknowledged_write_and_the_next_run_reports_it() {
    let dir = TempDir::new("tokio-kv");
    let Started {
        child: svc,
        previous,
        recovered,
        addr,
    } = start(&dir, false);
    assert!(previous.is_none());
    assert_eq!(recovered, 0);

    let acked = Arc::new(AtomicUsize::new(0));
    let (progress_tx, progress) = mpsc::channel::<()>();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (addr, acked, tx) = (addr.clone(), Arc::clone(&acked), progress_tx.clone());
            std::thread::spawn(move || {
                let mine = client(addr, id, acked);
                drop(tx);
                mine
            })
        })
        .collect();
    drop(progress_tx);
    // Wait for load without sleeping: spin on the counter, but give up if every client ended
    // (the channel closes), so a broken service fails the test instead of hanging it.
    while acked.load(Ordering::SeqCst) < BEFORE_SIGTERM {
        if progress.try_recv() == Err(mpsc::TryRecvError::Disconnected) {
            panic!("every client stopped before the load was up");
        }
        std::thread::yield_now();
    }
    svc.signal(libc::SIGTERM);
    let written: BTreeMap<String, String> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    let ended = svc.wait();
    ended.assert_exit_code(0);
    assert!(written.len() >= BEFORE_SIGTERM, "{}", written.len());
    // The drain ran in the application's code, after the request, and to its end.
    let drained = ended.line("DRAINED").unwrap_or_else(|| panic!("{ended}"));
    assert!(ended.line("DRAINING SIGTERM").is_some(), "{ended}");
    let persisted: usize = drained
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{drained}"));
    assert!(
        persisted >= written.len(),
        "{persisted} < {}",
        written.len()
    );
    // The hook took the readiness file away.
    assert!(!dir.join("ready").exists());

    // Every acknowledged write is in the log on disk, with its value...
    let log = std::fs::read_to_string(dir.join("kv.log")).expect("the log");
    let mut on_disk = BTreeMap::new();
    for line in log.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        assert_eq!(w.len(), 3, "a torn or foreign line in the log: {line:?}");
        on_disk.insert(w[1].to_owned(), w[2].to_owned());
    }
    for (k, v) in &written {
        assert_eq!(
            on_disk.get(k),
            Some(v),
            "acknowledged write {k}={v} not persisted"
        );
    }

    // ... and the next run replays it, serves it, and reports the clean shutdown.
    let Started {
        child: again,
        previous,
        recovered,
        addr,
    } = start(&dir, true);
    let report = previous.expect("a previous run");
    assert!(recovered >= written.len());
    assert_eq!(report["outcome"], "clean_exit", "{report:#}");
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["shutdown"]["reason"], "signal");
    assert_eq!(report["shutdown"]["signal"]["name"], "SIGTERM");
    assert_eq!(
        report["shutdown"]["signal"]["sender_pid"],
        u64::from(std::process::id())
    );
    assert_eq!(report["shutdown"]["hooks"][0]["name"], "mark not ready");
    assert_eq!(report["shutdown"]["hooks"][0]["status"], "ok");
    let mut conn = BufReader::new(TcpStream::connect(&addr).expect("connect"));
    for (k, v) in &written {
        assert_eq!(
            request(&mut conn, &format!("GET {k}\n")),
            Some(format!("VALUE {v}")),
            "{k}"
        );
    }
    drop(conn);
    again.signal(libc::SIGTERM);
    let ended = again.wait();
    ended.assert_exit_code(0);
    // The same report reached the logs at install as one JSON line on stderr.
    let line = ended
        .stderr
        .lines()
        .find(|l| l.starts_with(r#"{"crashguard":"previous_run","#))
        .unwrap_or_else(|| panic!("no previous-run line on stderr\n{ended}"));
    let logged: serde_json::Value = serde_json::from_str(line).expect("one JSON object");
    assert_eq!(logged["report"], report);
}

#[test]
fn a_port_in_use_exits_69_and_the_next_run_says_so() {
    let dir = TempDir::new("tokio-kv-port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("its address").to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokio-kv"));
    cmd.arg("--data").arg(dir.path()).args(["--addr", &addr]);
    let ended = Child::start(cmd).finish();
    ended.assert_exit_code(69);
    assert!(ended.stderr.contains("cannot listen on"), "{ended}");

    let Started {
        child, previous, ..
    } = start(&dir, true);
    let report = previous.expect("a previous run");
    assert_eq!(report["outcome"], "exit", "{report:#}");
    assert_eq!(report["exit_code"], 69);
    child.signal(libc::SIGTERM);
    child.wait().assert_exit_code(0);
}
