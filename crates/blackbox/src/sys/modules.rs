//! Platform part of [`crate::modules`]: `dl_iterate_phdr` on Linux, nothing elsewhere.

use crate::layout::{MAX_MODULES, Module};

#[cfg(target_os = "linux")]
pub(crate) fn capture(out: &mut [Module; MAX_MODULES], exe: &[u8]) -> u32 {
    use crate::assafe::copy_bytes;

    struct State<'a> {
        out: &'a mut [Module; MAX_MODULES],
        count: usize,
        exe: &'a [u8],
    }

    unsafe extern "C" fn callback(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `State` passed to dl_iterate_phdr below, alive for the call.
        let state = unsafe { &mut *data.cast::<State<'_>>() };
        // SAFETY: the loader passes a valid info structure for the duration of the callback.
        let info = unsafe { &*info };
        let Some(m) = state.out.get_mut(state.count) else {
            return 1;
        };
        *m = crate::modules::EMPTY;
        // `dlpi_addr` is 32 bits wide on 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        let bias = info.dlpi_addr as u64;
        let mut lo = u64::MAX;
        let mut hi = 0u64;
        // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
        let phdrs =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        for ph in phdrs {
            if ph.p_type == libc::PT_LOAD {
                lo = lo.min(bias + ph.p_vaddr);
                hi = hi.max(bias + ph.p_vaddr + ph.p_memsz);
            } else if ph.p_type == libc::PT_NOTE {
                // SAFETY: a PT_NOTE segment of a loaded object is mapped at bias + p_vaddr.
                let notes = unsafe {
                    std::slice::from_raw_parts(
                        (bias + ph.p_vaddr) as *const u8,
                        ph.p_memsz as usize,
                    )
                };
                if let Some(id) = gnu_build_id(notes) {
                    m.build_id_len = copy_bytes(&mut m.build_id, id);
                }
            }
        }
        if lo >= hi {
            return 0;
        }
        m.start = lo;
        m.end = hi;
        m.bias = bias;
        let name = if info.dlpi_name.is_null() {
            &[][..]
        } else {
            // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
            unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }.to_bytes()
        };
        // The executable is reported with an empty name; use the path we know instead.
        let path = if name.is_empty() && state.count == 0 {
            state.exe
        } else {
            name
        };
        m.path_len = copy_bytes(&mut m.path, path);
        state.count += 1;
        0
    }

    let mut state = State { out, count: 0, exe };
    // SAFETY: the callback only touches `state` and the loader-provided info.
    unsafe { libc::dl_iterate_phdr(Some(callback), (&raw mut state).cast()) };
    state.count as u32
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn capture(_out: &mut [Module; MAX_MODULES], _exe: &[u8]) -> u32 {
    0
}

/// Finds the `NT_GNU_BUILD_ID` descriptor in a note segment.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn gnu_build_id(mut notes: &[u8]) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let align4 = |n: usize| (n + 3) & !3;
    while notes.len() >= 12 {
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(notes.get(i..i + 4)?.try_into().ok()?))
        };
        let namesz = word(0)? as usize;
        let descsz = word(4)? as usize;
        let kind = word(8)?;
        let name_end = 12usize.checked_add(align4(namesz))?;
        let desc_end = name_end.checked_add(descsz)?;
        let name = notes.get(12..12 + namesz)?;
        let desc = notes.get(name_end..desc_end)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(desc);
        }
        notes = notes.get(name_end.checked_add(align4(descsz))?..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_build_id_note() {
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_ne_bytes());
        note.extend_from_slice(&3u32.to_ne_bytes());
        note.extend_from_slice(&3u32.to_ne_bytes());
        note.extend_from_slice(b"GNU\0");
        note.extend_from_slice(&[1, 2, 3, 0]);
        assert_eq!(gnu_build_id(&note), Some(&[1u8, 2, 3][..]));
        assert_eq!(gnu_build_id(&note[..10]), None);
        assert_eq!(gnu_build_id(&[]), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn finds_the_executable() {
        let mut out = [crate::modules::EMPTY; MAX_MODULES];
        let n = capture(&mut out, b"/proc/self/exe");
        assert!(n >= 2, "executable and libc at least");
        let here = finds_the_executable as *const () as usize as u64;
        let (idx, m) = crate::modules::find(&out[..n as usize], here).expect("own code is mapped");
        assert_eq!(idx, 0);
        assert!(m.build_id_len > 0, "rustc links with a build id on Linux");
    }
}
