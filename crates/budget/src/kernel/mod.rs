//! The one reader of the kernel's view, serving both budgets: where to look ([`Roots`]), how to
//! read a file ([`read_parsed`], one error style), the parsers of every `/proc` and cgroup file
//! the budgets use (one number parser, one cgroup v1 "unlimited" cutoff), and the cgroup v1+v2
//! resolver ([`cgroup_dirs`]).
//!
//! Nothing here touches a file outside the given [`Roots`], so the fixture trees under
//! `tests/fixtures` exercise the same code that runs on a real machine. Paths read from the
//! kernel (cgroup paths, mount points) are never followed out of their mount (`..` stays at the
//! mount point).

mod cgroup;
mod file;
mod parse;
mod roots;

pub use cgroup::{
    CgroupDir, CgroupLine, CgroupMount, CgroupVersion, cgroup_dir, cgroup_dirs, parse_mountinfo,
    parse_proc_cgroup, resolve,
};
pub use file::{read, read_lenient, read_parsed};
pub use parse::{
    Format, Limit, ParseError, Pressure, Statm, Status, V1_UNLIMITED_THRESHOLD, parse_decimal,
    parse_keyed, parse_loadavg_tasks, parse_meminfo_total, parse_pressure, parse_statm,
    parse_status, parse_status_threads, parse_u64, parse_v1_limit, parse_v2_limit,
};
pub use roots::Roots;
