//! What crashguard costs a tokio service under load: `tokio-kv` (crashguard installed,
//! `BudgetAllocator` as the global allocator with a 1 GiB budget, `BreadcrumbLayer` keeping one
//! tracing event per request) against `tokio-kv-plain` (the same service code on the system
//! allocator, a subscriber that keeps nothing, `tokio::signal`), driven over loopback by client
//! threads of this process.
//!
//! Every sample is a fresh server process. A round runs each server once per workload, in
//! rotating order, so that drifting load on a shared machine hits both alike; the ratio
//! compares the medians of the same rounds. Workloads: `get` (each client sends `GET` of keys it
//! wrote during the warm-up, one request in flight per connection) and `set` (each `SET` is
//! acknowledged once it is in the log and `fdatasync`ed, group-committed).
//!
//! `cargo bench -p crashguard-examples --bench kv_throughput`; `KV_ROUNDS` (default 9),
//! `KV_SECONDS` (measured seconds per sample, default 2) and `KV_CLIENTS` (default 4) override.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const SERVERS: [(&str, &str); 2] = [
    ("tokio-kv-plain", env!("CARGO_BIN_EXE_tokio-kv-plain")),
    ("tokio-kv (crashguard)", env!("CARGO_BIN_EXE_tokio-kv")),
];

#[derive(Clone, Copy)]
enum Workload {
    Get,
    Set,
}

const WORKLOADS: [(Workload, &str); 2] = [(Workload::Get, "get"), (Workload::Set, "set")];

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A started server and its address.
struct Server {
    child: Child,
    addr: String,
    dir: std::path::PathBuf,
}

fn start(exe: &str, tag: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("cg-kv-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(exe)
        .arg("--data")
        .arg(&dir)
        .args(["--addr", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the server");
    let mut lines = BufReader::new(child.stdout.take().expect("piped"));
    let mut addr = String::new();
    let mut line = String::new();
    while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if let Some(a) = line.trim_end().strip_prefix("LISTENING ") {
            addr = a.to_owned();
            break;
        }
        line.clear();
    }
    assert!(!addr.is_empty(), "{exe} did not say LISTENING");
    // Keep reading stdout so that the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while lines.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    Server { child, addr, dir }
}

fn stop(mut s: Server) {
    // SAFETY: kill has no memory-safety preconditions; the child is not reaped yet.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    let _ = s.child.wait();
    let _ = std::fs::remove_dir_all(&s.dir);
}

/// One request, one reply.
fn request(conn: &mut BufReader<TcpStream>, line: &[u8], reply: &mut String) -> bool {
    if conn.get_mut().write_all(line).is_err() {
        return false;
    }
    reply.clear();
    matches!(conn.read_line(reply), Ok(n) if n > 0)
}

/// CPU time (user + system) the process `pid` has used so far, in seconds (`/proc/<pid>/stat`,
/// clock ticks).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(14) + ticks(15)) as f64 / hz
}

/// Requests per second over `seconds`, from `clients` connections, and the server's CPU
/// microseconds per request over the same window.
fn load(server: &Server, w: Workload, clients: usize, seconds: u64) -> (f64, f64) {
    let addr = server.addr.as_str();
    let go = Arc::new(Barrier::new(clients + 1));
    let done = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..clients)
        .map(|id| {
            let (addr, go, done, total) = (
                addr.to_owned(),
                Arc::clone(&go),
                Arc::clone(&done),
                Arc::clone(&total),
            );
            std::thread::spawn(move || {
                let stream = TcpStream::connect(&addr).expect("connect");
                let _ = stream.set_nodelay(true);
                let mut conn = BufReader::new(stream);
                let mut reply = String::new();
                // Warm-up: the keys the GET workload reads.
                for n in 0..64 {
                    let line = format!("SET c{id}-{n} v{n}\n");
                    assert!(request(&mut conn, line.as_bytes(), &mut reply));
                }
                let gets: Vec<Vec<u8>> = (0..64)
                    .map(|n| format!("GET c{id}-{n}\n").into_bytes())
                    .collect();
                go.wait();
                let mut count = 0u64;
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let ok = match w {
                        Workload::Get => request(&mut conn, &gets[(n % 64) as usize], &mut reply),
                        Workload::Set => {
                            let line = format!("SET c{id}-{} v{n}\n", n % 64);
                            request(&mut conn, line.as_bytes(), &mut reply)
                        }
                    };
                    assert!(ok, "the server closed the connection");
                    n += 1;
                    count += 1;
                }
                total.fetch_add(count, Ordering::Relaxed);
            })
        })
        .collect();
    go.wait();
    let cpu0 = cpu_seconds(server.child.id());
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    done.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("client");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.child.id()) - cpu0;
    let requests = total.load(Ordering::Relaxed) as f64;
    (requests / elapsed, cpu * 1e6 / requests.max(1.0))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` / `--all-targets` run this without `--bench`: one short round.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = env("KV_ROUNDS", if quick { 1 } else { 9 }) as usize;
    let seconds = env("KV_SECONDS", if quick { 1 } else { 2 });
    let clients = env("KV_CLIENTS", 4) as usize;
    // samples[workload][server]: requests per second; cpu: the server's CPU µs per request.
    let mut samples = vec![vec![Vec::new(); SERVERS.len()]; WORKLOADS.len()];
    let mut cpu = vec![vec![Vec::new(); SERVERS.len()]; WORKLOADS.len()];
    for round in 0..rounds {
        for (wi, (w, _)) in WORKLOADS.iter().enumerate() {
            for k in 0..SERVERS.len() {
                let si = (k + round) % SERVERS.len();
                let server = start(SERVERS[si].1, &format!("{round}-{wi}-{si}"));
                let (rate, us) = load(&server, *w, clients, seconds);
                samples[wi][si].push(rate);
                cpu[wi][si].push(us);
                stop(server);
            }
        }
    }
    println!(
        "tokio-kv throughput: {rounds} interleaved rounds, {clients} connections, {seconds} s per sample (requests/s)"
    );
    println!(
        "| workload | server | every round (req/s) | median | vs plain | server CPU µs/request, median | vs plain |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for (wi, (_, wname)) in WORKLOADS.iter().enumerate() {
        let base = median(&mut samples[wi][0].clone());
        let base_cpu = median(&mut cpu[wi][0].clone());
        for (si, (sname, _)) in SERVERS.iter().enumerate() {
            let all: Vec<String> = samples[wi][si].iter().map(|r| format!("{r:.0}")).collect();
            let m = median(&mut samples[wi][si].clone());
            let c = median(&mut cpu[wi][si].clone());
            println!(
                "| {wname} | {sname} | {} | {m:.0} | {:.3}x | {c:.2} | {:.3}x |",
                all.join(" "),
                m / base,
                c / base_cpu
            );
        }
    }
}
