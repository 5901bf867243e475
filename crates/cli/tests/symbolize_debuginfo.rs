//! Symbolization against separate debug files and stripped libraries, checked against GNU
//! addr2line on the same addresses: libc frames name the functions GNU addr2line names
//! (`start_thread`, `clone3`), a stripped binary finds its debug file by build id or by
//! `.gnu_debuglink`, and an address no symbol covers gets no name instead of a wrong one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{module_and_offset, temp_dir};
use crashguard_cli::debuginfo::find_debug_file;
use crashguard_cli::symbolize::{FrameRef, Location, Symbolizer, build_id_of};

/// The return addresses on a fresh thread's stack, down to libc's thread start-up.
fn thread_ips() -> Vec<u64> {
    std::thread::spawn(|| {
        let mut ips = Vec::new();
        backtrace::trace(|f| {
            ips.push(f.ip() as u64);
            true
        });
        ips
    })
    .join()
    .expect("thread")
}

/// GNU addr2line's function name for `probe` in `module` (`??` when it has none).
fn gnu_addr2line(module: &Path, probe: u64) -> String {
    let out = Command::new("addr2line")
        .arg("-f")
        .arg("-e")
        .arg(module)
        .arg(format!("{probe:#x}"))
        .output()
        .expect("run GNU addr2line (binutils)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

fn symbolize(
    s: &mut Symbolizer,
    module: &Path,
    offset: u64,
    build_id: Option<&str>,
) -> Vec<Location> {
    let module = module.to_str().expect("utf-8 path");
    let offset = format!("{offset:#x}");
    s.symbolize(FrameRef {
        module: Some(module),
        offset: Some(&offset),
        build_id,
        return_address: false,
    })
    .expect("symbolize")
}

fn outer_name(locations: &[Location]) -> Option<&str> {
    locations.last().and_then(|l| l.function.as_deref())
}

#[test]
fn libc_frames_are_named_as_gnu_addr2line_names_them() {
    // A thread's outermost frames are libc's thread start-up: start_thread and clone3 (or
    // clone), both static in a stripped libc.
    let ips = thread_ips();
    let mut s = Symbolizer::new();
    let mut compared = Vec::new();
    for ip in ips {
        let Some((module, offset)) = module_and_offset(ip) else {
            continue;
        };
        if !module.to_string_lossy().contains("libc.so") {
            continue;
        }
        let build_id = build_id_of(&module).expect("libc's build id");
        // Return addresses: the call lies just before.
        let probe = offset - 1;
        let ours = symbolize(&mut s, &module, probe, build_id.as_deref());
        let gnu = gnu_addr2line(&module, probe);
        let debug_file = find_debug_file(
            &module,
            build_id.as_deref(),
            &[PathBuf::from("/usr/lib/debug")],
        );
        match debug_file {
            // With the debug file (libc6-dbg) both name the static functions.
            Some(_) => assert_eq!(outer_name(&ours), Some(gnu.as_str()), "{ours:?}"),
            // Without it GNU addr2line names the nearest exported symbol below, which is
            // wrong for a static function; ours names a symbol only when it covers the address.
            None => assert!(
                outer_name(&ours).is_none() || outer_name(&ours) == Some(gnu.as_str()),
                "{ours:?} vs {gnu}"
            ),
        }
        compared.push((gnu, outer_name(&ours).map(str::to_owned)));
    }
    assert!(compared.len() >= 2, "libc frames: {compared:?}");
    let libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6")
        .or_else(|_| std::fs::canonicalize("/lib/aarch64-linux-gnu/libc.so.6"));
    let has_dbg = libc.ok().is_some_and(|p| {
        let id = build_id_of(&p).ok().flatten();
        find_debug_file(&p, id.as_deref(), &[PathBuf::from("/usr/lib/debug")]).is_some()
    });
    if has_dbg {
        let names: Vec<Option<&str>> = compared.iter().map(|(_, o)| o.as_deref()).collect();
        assert!(names.contains(&Some("start_thread")), "{compared:?}");
        assert!(
            names.contains(&Some("clone3")) || names.contains(&Some("clone")),
            "{compared:?}"
        );
    }
}

#[inline(never)]
fn find_me_in_a_debug_file() -> u32 {
    std::hint::black_box(11)
}

fn objcopy(args: &[&str]) {
    let out = Command::new("objcopy")
        .args(args)
        .output()
        .expect("run objcopy (binutils)");
    assert!(out.status.success(), "objcopy {args:?}: {out:?}");
}

#[test]
fn a_stripped_binary_finds_its_debug_file_by_build_id_and_by_debuglink() {
    let addr = find_me_in_a_debug_file as *const () as usize as u64;
    let (exe, offset) = module_and_offset(addr).expect("in a mapped file");
    let build_id = build_id_of(&exe)
        .expect("parse")
        .expect("the test binary has a build id");
    let dir = temp_dir("dbg-split");
    let s = |p: &Path| p.to_str().expect("utf-8").to_owned();

    // The debug information, split off as distributions do.
    let debug = dir.join("app.debug");
    objcopy(&["--only-keep-debug", &s(&exe), &s(&debug)]);
    let stripped = dir.join("app");
    objcopy(&["--strip-debug", &s(&exe), &s(&stripped)]);
    assert_eq!(
        build_id_of(&stripped).ok().flatten().as_deref(),
        Some(build_id.as_str())
    );

    // Without a debug file: the name from the symbol table, no file or line.
    let mut plain = Symbolizer::new().with_debug_dirs(vec![dir.join("nowhere")]);
    let loc = symbolize(&mut plain, &stripped, offset, Some(&build_id));
    assert!(
        outer_name(&loc).is_some_and(|n| n.ends_with("find_me_in_a_debug_file")),
        "{loc:?}"
    );
    assert!(loc.iter().all(|l| l.file.is_none()), "{loc:?}");

    // By build id under a debug directory.
    let root = dir.join("debug-root");
    let by_id = root
        .join(".build-id")
        .join(&build_id[..2])
        .join(format!("{}.debug", &build_id[2..]));
    std::fs::create_dir_all(by_id.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&debug, &by_id).expect("copy");
    let mut with_root = Symbolizer::new().with_debug_dirs(vec![root.clone()]);
    let loc = symbolize(&mut with_root, &stripped, offset, Some(&build_id));
    let outer = loc.last().expect("a location");
    assert!(
        outer
            .file
            .as_deref()
            .is_some_and(|f| f.ends_with("symbolize_debuginfo.rs"))
            && outer.line.is_some(),
        "{loc:?}"
    );
    std::fs::remove_dir_all(&root).expect("rm");

    // By .gnu_debuglink, next to the binary.
    let linked = dir.join("linked");
    objcopy(&[
        &format!("--add-gnu-debuglink={}", s(&debug)),
        &s(&stripped),
        &s(&linked),
    ]);
    let mut s2 = Symbolizer::new().with_debug_dirs(vec![dir.join("nowhere")]);
    let loc = symbolize(&mut s2, &linked, offset, Some(&build_id));
    assert!(
        loc.last()
            .and_then(|l| l.file.as_deref())
            .is_some_and(|f| f.ends_with("symbolize_debuginfo.rs")),
        "{loc:?}"
    );
    // A file under the linked name that is not the debug file (its CRC-32 differs) is not used.
    std::fs::write(&debug, b"not an object file").expect("overwrite");
    let mut s3 = Symbolizer::new().with_debug_dirs(vec![dir.join("nowhere")]);
    let loc = symbolize(&mut s3, &linked, offset, Some(&build_id));
    assert!(loc.iter().all(|l| l.file.is_none()), "{loc:?}");
}

#[test]
fn library_frames_are_named_from_symbols_unless_library_lines_are_asked_for() {
    let libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6")
        .or_else(|_| std::fs::canonicalize("/lib/aarch64-linux-gnu/libc.so.6"))
        .expect("libc");
    let id = build_id_of(&libc).ok().flatten();
    let debug_file = find_debug_file(&libc, id.as_deref(), &[PathBuf::from("/usr/lib/debug")]);
    let ips = thread_ips();
    let probes: Vec<(PathBuf, u64)> = ips
        .into_iter()
        .filter_map(module_and_offset)
        .filter(|(m, _)| m.to_string_lossy().contains("libc.so"))
        .map(|(m, offset)| (m, offset - 1))
        .collect();
    assert!(probes.len() >= 2, "libc frames: {probes:?}");
    let exe = std::env::current_exe().expect("exe").display().to_string();
    let mut names_only = Symbolizer::new().library_lines(Some(&exe), false);
    let mut with_lines = Symbolizer::new().library_lines(Some(&exe), true);
    let mut any_line = false;
    for (module, probe) in &probes {
        let quick = symbolize(&mut names_only, module, *probe, id.as_deref());
        let full = symbolize(&mut with_lines, module, *probe, id.as_deref());
        // The same function either way: the outermost DWARF function is the symbol's.
        assert_eq!(
            outer_name(&quick),
            outer_name(&full),
            "{quick:?} vs {full:?}"
        );
        if debug_file.is_some() {
            assert_eq!(quick.len(), 1, "one name, no inlined frames: {quick:?}");
            assert_eq!(quick[0].file, None, "no file:line from symbols: {quick:?}");
            any_line |= full.iter().any(|l| l.file.is_some() && l.line.is_some());
        }
    }
    if debug_file.is_some() {
        assert!(
            any_line,
            "library_lines reads libc6-dbg's DWARF for file and line"
        );
    }
}
