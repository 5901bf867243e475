//! The first guess at why a run vanished without a handler running, from its last heartbeat.
//! The next run refines it with what only a live process can see (the cgroup's `oom_kill`
//! counter now, the kernel log).

use crate::report::Resources;

/// The share of a limit above which a vanished process is presumed OOM-killed.
pub const NEAR_LIMIT: f64 = 0.90;

/// A one-line verdict for a `killed_without_warning` report.
pub fn killed_without_warning(last: Option<&Resources>) -> String {
    let Some(r) = last else {
        return "killed by SIGKILL or power loss (no resource heartbeat was recorded)".to_owned();
    };
    let near = |used: Option<u64>, limit: Option<u64>| match (used, limit) {
        (Some(u), Some(l)) if l > 0 => (u as f64 / l as f64 >= NEAR_LIMIT).then_some((u, l)),
        _ => None,
    };
    if let Some((u, l)) = near(r.cgroup_memory_current, r.cgroup_memory_max) {
        return format!("likely OOM-killed: cgroup memory {u} of {l} bytes at the last heartbeat");
    }
    let used = r.heap_bytes.or(r.rss_bytes);
    if let Some((u, l)) = near(used, r.memory_budget) {
        return format!("likely OOM-killed: memory {u} of budget {l} bytes at the last heartbeat");
    }
    "killed by SIGKILL or power loss (memory was not near a limit at the last heartbeat)".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_the_cgroup_limit_is_oom() {
        let r = Resources {
            cgroup_memory_current: Some(95),
            cgroup_memory_max: Some(100),
            ..Resources::default()
        };
        assert!(killed_without_warning(Some(&r)).starts_with("likely OOM-killed"));
        let r = Resources {
            cgroup_memory_current: Some(50),
            cgroup_memory_max: Some(100),
            ..Resources::default()
        };
        assert!(killed_without_warning(Some(&r)).starts_with("killed by SIGKILL"));
        assert!(killed_without_warning(None).starts_with("killed by SIGKILL"));
    }
}
