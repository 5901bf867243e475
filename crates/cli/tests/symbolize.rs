//! The symbolizer against this very test executable: a function's address, made
//! module-relative from `/proc/self/maps` and the ELF program headers, resolves to its name; a
//! recorded build id that differs from the file's is refused.

mod common;

use std::path::{Path, PathBuf};

use common::module_and_offset;
use crashguard_cli::symbolize::{FrameRef, SymbolizeError, Symbolizer, build_id_of};

#[inline(never)]
fn symbolize_me_please() -> u32 {
    std::hint::black_box(7)
}

/// Where `symbolize_me_please` is, as a report records a frame: the module's path and the
/// offset, hex.
fn frame_of_me() -> (String, String) {
    let addr = symbolize_me_please as *const () as usize as u64;
    let (module, offset) = module_and_offset(addr).expect("the function is in a mapped file");
    let module = module.to_str().expect("utf-8 path").to_owned();
    (module, format!("{offset:#x}"))
}

#[test]
fn symbolizes_a_function_of_this_executable() {
    let (module, offset) = frame_of_me();
    // Linkers set up with --build-id (the default of Debian's, Ubuntu's and Fedora's gcc) give
    // the test binary an id; without one the lookup still works, merely unverified.
    let build_id = build_id_of(Path::new(&module)).expect("read build id");
    let mut s = Symbolizer::new();
    let frame = FrameRef {
        module: Some(&module),
        offset: Some(&offset),
        build_id: build_id.as_deref(),
        return_address: false,
    };
    let locations = s.symbolize(frame).expect("symbolize");
    let outer = locations.last().expect("a location");
    let name = outer.function.as_deref().unwrap_or_default();
    assert!(name.ends_with("symbolize_me_please"), "{locations:?}");
    assert!(
        outer
            .file
            .as_deref()
            .unwrap_or_default()
            .ends_with("symbolize.rs"),
        "{locations:?}"
    );
    assert!(outer.line.is_some());
    // The second lookup comes from the per-module cache and agrees.
    assert_eq!(s.symbolize(frame).expect("cached"), locations);
    assert!(s.failures().is_empty());
}

#[test]
fn refuses_a_mismatched_build_id() {
    let (module, offset) = frame_of_me();
    let mut s = Symbolizer::new();
    let frame = FrameRef {
        module: Some(&module),
        offset: Some(&offset),
        build_id: Some("00112233445566778899aabbccddeeff00112233"),
        return_address: false,
    };
    match s.symbolize(frame) {
        Err(e @ SymbolizeError::BuildIdMismatch { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("refusing") && text.contains("00112233445566778899"),
                "{text}"
            );
        }
        other => panic!("expected a build-id mismatch, got {other:?}"),
    }
    assert_eq!(s.failures().len(), 1);
}

#[test]
fn binary_override_replaces_the_executable_only() {
    let (module, offset) = frame_of_me();
    let build_id = build_id_of(Path::new(&module)).expect("read build id");
    // Pointing the override at the real file under a different recorded path still works.
    let mut s =
        Symbolizer::new().with_binary(Some("/recorded/elsewhere/app"), PathBuf::from(&module));
    let frame = FrameRef {
        module: Some("/recorded/elsewhere/app"),
        offset: Some(&offset),
        build_id: build_id.as_deref(),
        return_address: false,
    };
    let locations = s.symbolize(frame).expect("symbolize through the override");
    assert!(locations.iter().any(|l| {
        l.function
            .as_deref()
            .is_some_and(|f| f.ends_with("symbolize_me_please"))
    }));
    // Other modules keep their recorded paths.
    let other = FrameRef {
        module: Some("/nonexistent/libfoo.so"),
        offset: Some("0x10"),
        build_id: None,
        return_address: true,
    };
    assert!(matches!(
        s.symbolize(other),
        Err(SymbolizeError::Open { .. })
    ));
}

/// Return addresses captured inside `inlined_leaf`, which the compiler inlines into
/// `calls_an_inlined_leaf` even without optimisation (`#[inline(always)]`).
#[inline(never)]
fn calls_an_inlined_leaf() -> Vec<u64> {
    inlined_leaf()
}

#[inline(always)]
fn inlined_leaf() -> Vec<u64> {
    let mut ips = Vec::new();
    backtrace::trace(|frame| {
        ips.push(frame.ip() as u64);
        true
    });
    ips
}

#[test]
fn expands_inlined_frames_innermost_first() {
    let ips = calls_an_inlined_leaf();
    let mut s = Symbolizer::new();
    let mut found = None;
    for ip in ips {
        // Frames outside file mappings (the vDSO, a bogus last frame) cannot be looked up.
        let Some((module, offset)) = module_and_offset(ip) else {
            continue;
        };
        let module = module.to_str().expect("utf-8 path").to_owned();
        let offset = format!("{offset:#x}");
        let frame = FrameRef {
            module: Some(&module),
            offset: Some(&offset),
            build_id: None,
            return_address: true,
        };
        let Ok(locations) = s.symbolize(frame) else {
            continue;
        };
        let names: Vec<&str> = locations
            .iter()
            .filter_map(|l| l.function.as_deref())
            .collect();
        if names.iter().any(|n| n.ends_with("calls_an_inlined_leaf")) {
            found = Some(locations);
            break;
        }
    }
    let locations = found.expect("a captured frame resolves to calls_an_inlined_leaf");
    let names: Vec<&str> = locations
        .iter()
        .map(|l| l.function.as_deref().unwrap_or("??"))
        .collect();
    let leaf = names
        .iter()
        .position(|n| n.ends_with("inlined_leaf") && !n.ends_with("calls_an_inlined_leaf"));
    let caller = names
        .iter()
        .position(|n| n.ends_with("calls_an_inlined_leaf"));
    assert!(
        leaf.is_some() && leaf < caller,
        "inlined leaf not listed before its caller: {names:?}"
    );
    assert!(
        locations.first().is_some_and(|l| l.inlined),
        "{locations:?}"
    );
    assert!(
        locations.last().is_some_and(|l| !l.inlined),
        "{locations:?}"
    );
}
