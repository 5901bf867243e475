//! Where a module's symbols come from: its separate debug file (found by build id under
//! `/usr/lib/debug/.build-id/`, or by its `.gnu_debuglink`), and a size-aware symbol table.
//!
//! Distributions ship libraries stripped, with the debug information in a package of its own
//! (`libc6-dbg`, `*-dbgsym`, `*-debuginfo`) installed as `<debug dir>/.build-id/ab/cdef….debug`.
//! GDB and GNU addr2line look there first, then follow the `.gnu_debuglink` section (a file name
//! and a CRC-32) in the module's directory, its `.debug/` subdirectory and under the debug
//! directory. This module does the same, in the same order, and accepts a candidate only when
//! its build id equals the module's (or, for a file without one, when its CRC-32 matches the
//! debug link's).
//!
//! A stripped library keeps only its dynamic symbols, and many of its functions are static
//! (`start_thread` in libc). A lookup that takes the nearest symbol below an address names such
//! a function after whatever exported symbol happens to precede it; here a symbol covers only
//! `[address, address + size)`, so such an address gets no name rather than a wrong one, and is
//! shown as `module+0xoffset`.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol, ReadCache, SymbolKind};

/// Where distributions install separate debug files.
pub const DEFAULT_DEBUG_DIR: &str = "/usr/lib/debug";

/// The symbol chosen so far for one address.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Best {
    address: u64,
    size: u64,
    name: String,
}

/// Whether a symbol at `address` with `size` and `name` names an address better than `best`:
/// the innermost (smallest) covering range; among equal sizes the nearest start; among aliases
/// (same start and size) a name without a leading underscore, then the shortest, then the
/// first alphabetically, so that `clone3` wins over `__clone3` whatever the table's order.
fn better(address: u64, size: u64, name: &str, best: &Best) -> bool {
    (
        size,
        std::cmp::Reverse(address),
        name.starts_with('_'),
        name.len(),
        name,
    ) < (
        best.size,
        std::cmp::Reverse(best.address),
        best.name.starts_with('_'),
        best.name.len(),
        best.name.as_str(),
    )
}

/// Names a fixed set of addresses from function symbols, in one pass over the symbol tables.
///
/// The addresses are known before any table is read (every frame of a report), so nothing is
/// collected, allocated or sorted per symbol: each symbol is offered, checked against the
/// sorted addresses it could cover with a binary search, and a name is copied only when it
/// becomes an address's best so far. A symbol covers only `[address, address + size)`;
/// unsized symbols cover nothing.
#[derive(Clone, Debug, Default)]
pub struct Covering {
    probes: Vec<u64>,
    best: Vec<Option<Best>>,
}

impl Covering {
    /// Prepares to name `probes` (module-relative addresses, in any order, repeats allowed).
    pub fn new(probes: impl IntoIterator<Item = u64>) -> Covering {
        let mut probes: Vec<u64> = probes.into_iter().collect();
        probes.sort_unstable();
        probes.dedup();
        let best = vec![None; probes.len()];
        Covering { probes, best }
    }

    /// Offers one function symbol: `[address, address + size)` named `name` (raw, mangled).
    pub fn offer(&mut self, address: u64, size: u64, name: &str) {
        if size == 0 || name.is_empty() {
            return;
        }
        let first = self.probes.partition_point(|&p| p < address);
        for (probe, best) in self.probes[first..].iter().zip(&mut self.best[first..]) {
            if probe - address >= size {
                break;
            }
            if best.as_ref().is_none_or(|b| better(address, size, name, b)) {
                *best = Some(Best {
                    address,
                    size,
                    name: name.to_owned(),
                });
            }
        }
    }

    /// Offers every function symbol (`.symtab` and `.dynsym`) of each file that parses; files
    /// that cannot be read add nothing. The string table is read only for the names of symbols
    /// that cover an address: a debug binary's holds megabytes of names nobody asked for.
    pub fn read(&mut self, files: &[&Path]) {
        for path in files {
            // The path may come from a report: never block on a FIFO or device named there.
            let Ok(file) = crashguard_blackbox::open_regular_file(path) else {
                continue;
            };
            let cache = ReadCache::new(file);
            let Ok(obj) = object::File::parse(&cache) else {
                continue;
            };
            for s in obj.symbols().chain(obj.dynamic_symbols()) {
                if s.kind() != SymbolKind::Text || s.size() == 0 || s.is_undefined() {
                    continue;
                }
                // The cheap range check first: most symbols cover no probe, and their names
                // need not be looked at at all.
                let first = self.probes.partition_point(|&p| p < s.address());
                if self
                    .probes
                    .get(first)
                    .is_none_or(|&p| p - s.address() >= s.size())
                {
                    continue;
                }
                let Ok(name) = s.name() else { continue };
                self.offer(s.address(), s.size(), name);
            }
        }
    }

    /// The raw name of the function symbol covering `probe`, when one was offered.
    pub fn lookup(&self, probe: u64) -> Option<&str> {
        let i = self.probes.binary_search(&probe).ok()?;
        self.best[i].as_ref().map(|b| b.name.as_str())
    }
}

/// What the module file says about its separate debug file.
#[derive(Clone, Debug, Default)]
pub struct DebugLink {
    /// The `.gnu_debuglink` file name.
    pub name: Option<String>,
    /// Its CRC-32.
    pub crc: u32,
}

/// The largest debug file read whole to check a debug link's CRC-32.
const MAX_DEBUG_FILE: u64 = 4 << 30;

/// Reads the `.gnu_debuglink` of an object file.
pub fn debug_link(path: &Path) -> DebugLink {
    let link = (|| {
        let file = crashguard_blackbox::open_regular_file(path).ok()?;
        let cache = ReadCache::new(file);
        let obj = object::File::parse(&cache).ok()?;
        let (name, crc) = obj.gnu_debuglink().ok()??;
        Some(DebugLink {
            name: Some(String::from_utf8_lossy(name).into_owned()),
            crc,
        })
    })();
    link.unwrap_or_default()
}

/// The build id of an object file, hex, when it parses and has one.
fn build_id_hex(path: &Path) -> Option<String> {
    let file = crashguard_blackbox::open_regular_file(path).ok()?;
    let cache = ReadCache::new(file);
    let obj = object::File::parse(&cache).ok()?;
    obj.build_id().ok()?.map(crate::symbolize::hex)
}

/// Whether `candidate` is the debug file of a module with `build_id` and `link`. Every open is
/// non-blocking and refuses anything but a regular file.
fn matches(candidate: &Path, build_id: Option<&str>, link: Option<&DebugLink>) -> bool {
    match (build_id_hex(candidate), build_id) {
        (Some(found), Some(want)) => found.eq_ignore_ascii_case(want),
        // No build id to compare: the debug link's CRC-32 of the whole file decides.
        _ => match link {
            Some(l) => crashguard_blackbox::read_regular_file(candidate, MAX_DEBUG_FILE)
                .is_ok_and(|bytes| crashguard_blackbox::crc32(&bytes) == l.crc),
            None => false,
        },
    }
}

/// The separate debug file of the module at `module` (with `build_id`, hex), searched in
/// `debug_dirs` the way GDB does: `<dir>/.build-id/ab/cdef….debug` first, then the
/// `.gnu_debuglink` name next to the module, in its `.debug/`, and under `<dir>/<module dir>/`.
pub fn find_debug_file(
    module: &Path,
    build_id: Option<&str>,
    debug_dirs: &[PathBuf],
) -> Option<PathBuf> {
    // The build id comes from a report: only hex digits may become part of a path.
    if let Some(id) =
        build_id.filter(|id| id.len() > 2 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        && let (Some(head), Some(tail)) = (id.get(..2), id.get(2..))
    {
        for dir in debug_dirs {
            let candidate = dir
                .join(".build-id")
                .join(head.to_ascii_lowercase())
                .join(format!("{}.debug", tail.to_ascii_lowercase()));
            if matches(&candidate, Some(id), None) {
                return Some(candidate);
            }
        }
    }
    let link = debug_link(module);
    let name = link.name.as_deref()?;
    // The link is a bare file name; anything with a directory in it is not followed.
    if name.contains('/') || name.is_empty() {
        return None;
    }
    let module_dir = module.parent().unwrap_or(Path::new("/"));
    let mut candidates = vec![module_dir.join(name), module_dir.join(".debug").join(name)];
    for dir in debug_dirs {
        let relative = module_dir.strip_prefix("/").unwrap_or(module_dir);
        candidates.push(dir.join(relative).join(name));
    }
    candidates
        .into_iter()
        .filter(|c| c != module)
        .find(|c| matches(c, build_id, Some(&link)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covering(probes: &[u64], symbols: &[(u64, u64, &str)]) -> Covering {
        let mut c = Covering::new(probes.iter().copied());
        for &(address, size, name) in symbols {
            c.offer(address, size, name);
        }
        c
    }

    #[test]
    fn a_symbol_covers_only_its_own_range() {
        let probes = [
            0x1000, 0x103f, 0x1040, 0x10ff, 0x1105, 0x1230, 0x1250, 0x1300, 0x10,
        ];
        let t = covering(
            &probes,
            &[
                (0x1000, 0x40, "exported_a"),
                // A gap: a static function of a stripped library lives at 0x1040..0x1100.
                (0x1100, 0x10, "exported_b"),
                (0x1200, 0x100, "outer"),
                (0x1220, 0x20, "inner_label"),
                (0x1300, 0, "unsized"),
            ],
        );
        assert_eq!(t.lookup(0x1000), Some("exported_a"));
        assert_eq!(t.lookup(0x103f), Some("exported_a"));
        assert_eq!(t.lookup(0x1040), None, "the nearest symbol below is not it");
        assert_eq!(t.lookup(0x10ff), None);
        assert_eq!(t.lookup(0x1105), Some("exported_b"));
        assert_eq!(t.lookup(0x1230), Some("inner_label"), "innermost range");
        assert_eq!(t.lookup(0x1250), Some("outer"));
        assert_eq!(t.lookup(0x1300), None, "unsized symbols are dropped");
        assert_eq!(t.lookup(0x10), None);
        assert_eq!(
            t.lookup(0x1001),
            None,
            "only the addresses asked for are named"
        );
    }

    #[test]
    fn the_order_symbols_come_in_does_not_matter() {
        let symbols = [
            (0x1200, 0x100, "outer"),
            (0x1220, 0x20, "inner_label"),
            (0x1210, 0x20, "same_size_farther"),
            (0x10, 8, "__clone3"),
            (0x10, 8, "clone3"),
        ];
        let probes = [0x1225, 0x12, 0x1280];
        let forward = covering(&probes, &symbols);
        let mut reversed = symbols;
        reversed.reverse();
        let backward = covering(&probes, &reversed);
        for p in probes {
            assert_eq!(forward.lookup(p), backward.lookup(p), "{p:#x}");
        }
        assert_eq!(
            forward.lookup(0x12),
            Some("clone3"),
            "alias without underscore"
        );
        assert_eq!(
            forward.lookup(0x1225),
            Some("inner_label"),
            "nearest of equal size"
        );
        assert_eq!(forward.lookup(0x1280), Some("outer"));
    }
}
