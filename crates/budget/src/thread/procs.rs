//! The host's processes by thread count, to name a neighbour that leaks threads.

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::kernel;
use crate::{Error, IoOp};

/// One process as `/proc/<pid>/status` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// `comm` of the process.
    pub name: String,
    /// Real uid, when readable.
    pub uid: Option<u32>,
    /// Threads of the process.
    pub threads: u64,
}

/// Every process under the proc root with its thread count, largest first.
#[derive(Clone, Debug, Default)]
pub struct ProcessTable {
    procs: Vec<ProcessInfo>,
}

impl ProcessTable {
    /// Reads `<proc_root>/<pid>/status` for every numeric entry. Processes that vanish or cannot
    /// be read are skipped; only an unreadable proc root is an error.
    pub fn scan(proc_root: &Path) -> Result<ProcessTable, Error> {
        let entries = fs::read_dir(proc_root).map_err(|e| Error::io(IoOp::List, proc_root, e))?;
        let mut buf = Vec::with_capacity(2048);
        let mut path = proc_root.to_path_buf();
        let mut procs = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(kernel::parse_decimal)
                .and_then(|n| u32::try_from(n).ok())
            else {
                continue;
            };
            path.push(&name);
            path.push("status");
            buf.clear();
            let read = fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut buf));
            path.pop();
            path.pop();
            if read.is_err() {
                continue;
            }
            let status = kernel::parse_status(&String::from_utf8_lossy(&buf));
            let Some(threads) = status.threads else {
                continue;
            };
            procs.push(ProcessInfo {
                pid,
                name: status.name.unwrap_or_default(),
                uid: status.uid,
                threads,
            });
        }
        procs.sort_by(|a, b| b.threads.cmp(&a.threads).then(a.pid.cmp(&b.pid)));
        Ok(ProcessTable { procs })
    }

    /// All processes, largest thread count first.
    pub fn processes(&self) -> &[ProcessInfo] {
        &self.procs
    }

    /// The `n` processes with the most threads.
    pub fn top(&self, n: usize) -> &[ProcessInfo] {
        self.procs.get(..n.min(self.procs.len())).unwrap_or(&[])
    }

    /// The `n` processes of real uid `uid` with the most threads.
    pub fn top_of_uid(&self, uid: u32, n: usize) -> Vec<ProcessInfo> {
        self.procs
            .iter()
            .filter(|p| p.uid == Some(uid))
            .take(n)
            .cloned()
            .collect()
    }

    /// Threads of all processes whose real uid is `uid`: what `RLIMIT_NPROC` counts (as far as
    /// this pid namespace can see).
    pub fn threads_of_uid(&self, uid: u32) -> u64 {
        self.procs
            .iter()
            .filter(|p| p.uid == Some(uid))
            .map(|p| p.threads)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_this_host() {
        let table = ProcessTable::scan(Path::new("/proc")).expect("scan /proc");
        let me = std::process::id();
        assert!(table.processes().iter().any(|p| p.pid == me));
        assert!(table.threads_of_uid(crate::sys::thread::real_uid()) >= 1);
        assert!(ProcessTable::scan(Path::new("/nonexistent")).is_err());
    }
}
