//! The process's cgroups: `/proc/self/cgroup` and `/proc/self/mountinfo` parsed, and resolved to
//! the directories that hold a controller's files, on cgroup v1 and v2.
//!
//! `/proc/self/cgroup` names the cgroup path per hierarchy; `/proc/self/mountinfo` says where
//! each hierarchy is mounted and which part of it (a container sees its own cgroup as the mount
//! root). Both versions may be present at once: a hybrid host keeps `pids` and `memory` on v1
//! and mounts an empty v2 hierarchy at `/sys/fs/cgroup/unified`.

use std::path::{Path, PathBuf};

use super::file;
use super::parse::{Format, ParseError, clip, parse_decimal};
use super::roots::Roots;
use crate::error::Result;

/// Which cgroup hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// A legacy hierarchy with its own controllers (`cgroup`).
    V1,
    /// The unified hierarchy (`cgroup2`).
    V2,
}

impl CgroupVersion {
    /// 1 or 2.
    pub fn number(self) -> u8 {
        match self {
            CgroupVersion::V1 => 1,
            CgroupVersion::V2 => 2,
        }
    }
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controller-list:path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupLine {
    /// The hierarchy id; 0 for the unified (v2) hierarchy.
    pub hierarchy: u32,
    /// The controllers bound to the hierarchy, comma-separated as in the file (`cpu,cpuacct`);
    /// empty for v2. Kept as one string: install reads this file, and a vector per line would
    /// be an allocation per controller for nothing.
    pub controllers: String,
    /// The cgroup's path relative to the hierarchy's root.
    pub path: String,
}

impl CgroupLine {
    /// The unified hierarchy's line (`0::/path`).
    pub fn is_v2(&self) -> bool {
        self.hierarchy == 0 && self.controllers.is_empty()
    }

    /// The controllers, one by one.
    pub fn controllers(&self) -> impl Iterator<Item = &str> {
        self.controllers.split(',').filter(|c| !c.is_empty())
    }
}

/// Parses `/proc/<pid>/cgroup`: lines of `hierarchy-id:controllers:path`.
///
/// The path may itself contain `:`, so only the first two colons split.
pub fn parse_proc_cgroup(text: &str) -> std::result::Result<Vec<CgroupLine>, ParseError> {
    const F: Format = Format::ProcCgroup;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::new(
                F,
                format!("line without two colons: {:?}", clip(line)),
            ));
        };
        let hierarchy = parse_decimal(id)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ParseError::new(F, format!("bad hierarchy id: {:?}", clip(id))))?;
        if !path.starts_with('/') {
            return Err(ParseError::new(
                F,
                format!("path is not absolute: {:?}", clip(path)),
            ));
        }
        out.push(CgroupLine {
            hierarchy,
            controllers: controllers.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(out)
}

/// A cgroup file system from `/proc/<pid>/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupMount {
    /// `cgroup` or `cgroup2`.
    pub version: CgroupVersion,
    /// The directory of the hierarchy that is the root of this mount (field 4), e.g. `/` or
    /// `/docker/abc`, with octal escapes decoded.
    pub root: String,
    /// Where it is mounted (field 5), with octal escapes decoded.
    pub mount_point: String,
    /// The super options, comma-separated as in the file; for v1 they name the controllers
    /// (`rw,pids`).
    pub options: String,
}

impl CgroupMount {
    /// Whether this mount carries `controller` (every controller lives on v2).
    pub fn carries(&self, controller: &str) -> bool {
        self.version == CgroupVersion::V2 || self.options.split(',').any(|o| o == controller)
    }
}

/// Decodes the `\ooo` octal escapes the kernel uses for space, tab, newline and backslash.
fn unescape_octal(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            let digits = bytes.get(i + 1..i + 4)?;
            let mut v: u32 = 0;
            for &d in digits {
                if !(b'0'..=b'7').contains(&d) {
                    return None;
                }
                v = v * 8 + u32::from(d - b'0');
            }
            out.push(u8::try_from(v).ok()?);
            i += 4;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses `/proc/<pid>/mountinfo` and picks out the cgroup mounts, in file order.
///
/// Each line is `id parent major:minor root mount-point options [optional...] - fstype source
/// super-options`; the optional fields end at a lone `-`.
pub fn parse_mountinfo(text: &str) -> std::result::Result<Vec<CgroupMount>, ParseError> {
    const F: Format = Format::Mountinfo;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // Walked without collecting: install parses this file, and most lines are not cgroups.
        let mut fields = line.split(' ').enumerate();
        let (mut root, mut mount_point, mut sep) = (None, None, None);
        for (i, f) in fields.by_ref() {
            match i {
                3 => root = Some(f),
                4 => mount_point = Some(f),
                _ => {}
            }
            if f == "-" {
                sep = Some(i);
                break;
            }
        }
        let sep = sep.ok_or_else(|| {
            ParseError::new(F, format!("line without separator: {:?}", clip(line)))
        })?;
        let too_few = || ParseError::new(F, format!("too few fields: {:?}", clip(line)));
        if sep < 6 {
            return Err(too_few());
        }
        let fstype = fields.next().map(|(_, f)| f);
        let _source = fields.next();
        let super_options = fields.next().map_or("", |(_, f)| f);
        let (Some(root), Some(mount_point), Some(fstype)) = (root, mount_point, fstype) else {
            return Err(too_few());
        };
        let version = match fstype {
            "cgroup" => CgroupVersion::V1,
            "cgroup2" => CgroupVersion::V2,
            _ => continue,
        };
        let decode = |s: &str| {
            unescape_octal(s)
                .ok_or_else(|| ParseError::new(F, format!("bad escape in {:?}", clip(s))))
        };
        let options = super_options.to_owned();
        out.push(CgroupMount {
            version,
            root: decode(root)?,
            mount_point: decode(mount_point)?,
            options,
        });
    }
    Ok(out)
}

/// Joins a cgroup path from `/proc/self/cgroup` to its mount: the directory, as an absolute
/// path on the machine, that holds the cgroup's files.
///
/// The mount's `root` is the part of the hierarchy visible at the mount point; the process's
/// path normally starts with it (`/docker/<id>` mounted at `/sys/fs/cgroup/memory` inside a
/// container, path `/docker/<id>` -> the mount point itself). When it does not (cgroup
/// namespaces can show paths such as `/../..`), or when the path has a `..` component, the
/// process is taken to be at the mount point: a path read from the kernel never leads out of
/// the mount.
pub fn cgroup_dir(mount: &CgroupMount, path: &str) -> String {
    let rel = if mount.root == "/" {
        Some(path)
    } else {
        path.strip_prefix(mount.root.as_str())
            .filter(|r| r.is_empty() || r.starts_with('/'))
    };
    let rel = match rel {
        Some(r) if !r.split('/').any(|c| c == "..") => r.trim_matches('/'),
        _ => "",
    };
    let base = mount.mount_point.trim_end_matches('/');
    match (base.is_empty(), rel.is_empty()) {
        (true, true) => "/".to_owned(),
        (false, true) => base.to_owned(),
        _ => format!("{base}/{rel}"),
    }
}

/// A cgroup directory of this process for one controller, mapped into [`Roots`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupDir {
    /// The hierarchy.
    pub version: CgroupVersion,
    /// The process's own cgroup directory.
    pub dir: PathBuf,
    /// The hierarchy's mount point; limits of ancestors up to here also apply.
    pub mount: PathBuf,
}

impl CgroupDir {
    /// The own directory and its ancestors up to the mount point, innermost first.
    pub fn levels(&self) -> impl Iterator<Item = &Path> {
        self.dir
            .ancestors()
            .take_while(move |p| p.starts_with(&self.mount))
    }
}

/// The directories of `controller` (`"pids"`, `"memory"`) for the process whose cgroup lines and
/// mounts are given: for each line that carries the controller (a v1 hierarchy naming it, or the
/// v2 line), the first mount of that hierarchy. Lines without a mount are left out.
pub fn resolve(
    roots: &Roots,
    controller: &str,
    lines: &[CgroupLine],
    mounts: &[CgroupMount],
) -> Vec<CgroupDir> {
    let mut out = Vec::new();
    for line in lines {
        let version = if line.is_v2() {
            CgroupVersion::V2
        } else if line.controllers().any(|c| c == controller) {
            CgroupVersion::V1
        } else {
            continue;
        };
        let Some(mount) = mounts
            .iter()
            .find(|m| m.version == version && m.carries(controller))
        else {
            continue;
        };
        out.push(CgroupDir {
            version,
            dir: roots.map(&cgroup_dir(mount, &line.path)),
            mount: roots.map(&mount.mount_point),
        });
    }
    out
}

/// [`resolve`] for this process, from `<proc>/self/cgroup` and `<proc>/self/mountinfo`. Either
/// file missing (no cgroups, not Linux) gives an empty list; an unreadable or malformed one an
/// error naming it.
pub fn cgroup_dirs(roots: &Roots, controller: &str) -> Result<Vec<CgroupDir>> {
    // mountinfo is a few KiB; one buffer of that size serves both files without regrowing.
    let mut buf = String::with_capacity(8192);
    let own = roots.proc().join("self/cgroup");
    let Some(lines) = file::read_parsed(&own, &mut buf, parse_proc_cgroup)? else {
        return Ok(Vec::new());
    };
    let mountinfo = roots.proc().join("self/mountinfo");
    let Some(mounts) = file::read_parsed(&mountinfo, &mut buf, parse_mountinfo)? else {
        return Ok(Vec::new());
    };
    Ok(resolve(roots, controller, &lines, &mounts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_mounts() {
        let lines = parse_proc_cgroup("8:pids:/user.slice/a\n4:memory,foo:/m\n0::/unified/x\n")
            .expect("valid");
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].controllers().collect::<Vec<_>>(), ["pids"]);
        assert_eq!(lines[0].path, "/user.slice/a");
        assert_eq!(lines[1].controllers().count(), 2);
        assert!(lines[2].is_v2());
        assert!(parse_proc_cgroup("broken\n").is_err());

        let text = "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n\
            22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
            50 31 0:40 /docker/a /sys/fs/cgroup/my\\040dir rw - cgroup cgroup rw,memory\n";
        let mounts = parse_mountinfo(text).expect("valid");
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[0].version, CgroupVersion::V1);
        assert!(mounts[0].carries("pids"));
        assert_eq!(mounts[1].version, CgroupVersion::V2);
        assert_eq!(mounts[1].mount_point, "/sys/fs/cgroup/unified");
        assert_eq!(mounts[2].mount_point, "/sys/fs/cgroup/my dir");
        assert_eq!(mounts[2].root, "/docker/a");
    }

    #[test]
    fn resolves_v1_and_v2() {
        let lines = parse_proc_cgroup("8:pids:/svc\n4:memory:/m\n0::/unified-svc\n").unwrap();
        let mounts = parse_mountinfo(
            "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n",
        )
        .unwrap();
        let roots = Roots::new("/fx/proc", "/fx/sys");
        let dirs = resolve(&roots, "pids", &lines, &mounts);
        assert_eq!(dirs.len(), 2);
        assert_eq!(dirs[0].version, CgroupVersion::V1);
        assert_eq!(dirs[0].dir, PathBuf::from("/fx/sys/fs/cgroup/pids/svc"));
        assert_eq!(
            dirs[1].dir,
            PathBuf::from("/fx/sys/fs/cgroup/unified/unified-svc")
        );
        let levels: Vec<&Path> = dirs[0].levels().collect();
        assert_eq!(
            levels,
            vec![
                Path::new("/fx/sys/fs/cgroup/pids/svc"),
                Path::new("/fx/sys/fs/cgroup/pids")
            ]
        );
    }

    #[test]
    fn container_mount_root_is_stripped_and_dot_dot_stays_at_the_mount() {
        let mounts =
            parse_mountinfo("41 31 0:38 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
                .unwrap();
        let dir = |path: &str| {
            let lines = parse_proc_cgroup(&format!("0::{path}\n")).unwrap();
            resolve(&Roots::system(), "pids", &lines, &mounts)[0]
                .dir
                .clone()
        };
        assert_eq!(
            dir("/docker/abc/inner"),
            PathBuf::from("/sys/fs/cgroup/inner")
        );
        // Both readers used to disagree here: the thread side followed `..` out of the mount.
        assert_eq!(
            dir("/docker/abc/../../etc"),
            PathBuf::from("/sys/fs/cgroup")
        );
        assert_eq!(dir("/docker/abcdef"), PathBuf::from("/sys/fs/cgroup"));
    }
}
