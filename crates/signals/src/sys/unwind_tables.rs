//! Linux: the unwind tables of every loaded object, for the handler's unwinder (`unwind.rs`).
//!
//! The tables of an object that stays mapped for the whole life of the process are used where
//! the loader mapped them; those of every other object are copied. Which objects stay: the
//! executable itself, and the shared objects the executable names as its own dependencies
//! (`DT_NEEDED`: for a Rust program libc, libm, libgcc_s). The loader maps those before `main`
//! and never unmaps them — glibc's `dlclose` only ever unloads objects that `dlopen` loaded.
//! An object loaded with `dlopen` may be unloaded at any time, so its tables are copied: a
//! read from the handler then cannot touch memory that is gone.
//!
//! Why not copy everything: a copy costs its pages twice, once at install and once when the
//! process dies (the kernel frees every resident page at exit; see
//! `docs/performance/signals.md`), and a large Rust executable has megabytes of `.eh_frame`.
//! Tables used in place are read from the executable's file mapping, as the code is; the pages
//! a crash's unwind needs are mapped from the page cache if they are not yet (a minor fault, as
//! for code that runs for the first time).

use core::ffi::{c_char, c_int, c_void};

use super::{TableBytes, UnwindModule};

/// What the `dl_iterate_phdr` callback collects.
struct Collect {
    out: Vec<UnwindModule>,
    /// Whether the next object is the first one listed: glibc lists the executable first.
    first: bool,
    /// The executable's `DT_NEEDED` names not yet matched to a loaded object.
    needed: Vec<Vec<u8>>,
}

/// Every loaded object with DWARF unwind tables (`PT_GNU_EH_FRAME`): used in place for the
/// executable and its direct dependencies, copied for everything else (see the module's
/// documentation). Not async-signal-safe (the loader's lock, allocation): called at install.
pub(crate) fn unwind_modules() -> Vec<UnwindModule> {
    unsafe extern "C" fn callback(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the Collect passed to dl_iterate_phdr below, alive for the call;
        // the loader passes a valid info structure for the duration of the callback.
        let (collect, info) = unsafe { (&mut *data.cast::<Collect>(), &*info) };
        // SAFETY: as above.
        unsafe { visit(collect, info) };
        0
    }
    let mut collect = Collect {
        out: Vec::new(),
        first: true,
        needed: Vec::new(),
    };
    // SAFETY: the callback only touches `collect` and the loader-provided info.
    unsafe { libc::dl_iterate_phdr(Some(callback), (&raw mut collect).cast()) };
    collect.out
}

/// One object of `dl_iterate_phdr`.
///
/// # Safety
///
/// `info` is the loader's description of a loaded object, valid for the call.
unsafe fn visit(collect: &mut Collect, info: &libc::dl_phdr_info) {
    let first = core::mem::replace(&mut collect.first, false);
    // `dlpi_addr` is 32 bits wide on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let bias = info.dlpi_addr as u64;
    // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
    let phdrs =
        unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let loads = || phdrs.iter().filter(|p| p.p_type == libc::PT_LOAD);
    let start = loads().map(|p| bias + p.p_vaddr).min().unwrap_or(0);
    let end = loads()
        .map(|p| bias + p.p_vaddr + p.p_memsz)
        .max()
        .unwrap_or(0);
    let name = if info.dlpi_name.is_null() {
        Vec::new()
    } else {
        // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
        unsafe { core::ffi::CStr::from_ptr(info.dlpi_name) }
            .to_bytes()
            .to_vec()
    };
    let stays = if first {
        // SAFETY: the executable's own program headers and mapping, as the loader reports them.
        collect.needed = unsafe { needed_names(bias, phdrs, start, end) };
        true
    } else {
        let base = name.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
        match collect.needed.iter().position(|n| n.as_slice() == base) {
            Some(i) => {
                // Only the first object of that name: the one loaded for the executable (a
                // copy loaded later into another namespace with `dlmopen` is not it).
                collect.needed.swap_remove(i);
                true
            }
            None => false,
        }
    };
    let Some(hdr) = phdrs.iter().find(|p| p.p_type == libc::PT_GNU_EH_FRAME) else {
        return;
    };
    if start >= end || hdr.p_memsz < 8 {
        return;
    }
    let hdr_addr = bias + hdr.p_vaddr;
    let hdr_len = hdr.p_memsz as usize;
    // SAFETY: a PT_GNU_EH_FRAME segment of a loaded object is mapped at bias + p_vaddr, for
    // at least the duration of this callback.
    let hdr_bytes = unsafe { core::slice::from_raw_parts(hdr_addr as *const u8, hdr_len) };
    let Some(eh_frame_svma) = eh_frame_address(hdr_bytes, hdr.p_vaddr) else {
        return;
    };
    let Some(segment) =
        loads().find(|p| (p.p_vaddr..p.p_vaddr + p.p_filesz).contains(&eh_frame_svma))
    else {
        return;
    };
    // `[eh_frame_svma, segment end)` lies inside a loaded, file-backed PT_LOAD segment, mapped
    // at bias + its address.
    let eh_frame_addr = bias + eh_frame_svma;
    let eh_frame_len = (segment.p_vaddr + segment.p_filesz - eh_frame_svma) as usize;
    let table = |addr: u64, len: usize| {
        if stays {
            // SAFETY: `[addr, addr + len)` is mapped (see above), and for the whole life of
            // the process: the object is the executable or one the loader mapped for it,
            // which is never unmapped (see the module's documentation).
            TableBytes::InPlace(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
        } else {
            // SAFETY: `[addr, addr + len)` is mapped for the duration of this callback (see
            // above); the bytes are copied before it returns.
            TableBytes::Copied(
                unsafe { core::slice::from_raw_parts(addr as *const u8, len) }.to_vec(),
            )
        }
    };
    collect.out.push(UnwindModule {
        name: String::from_utf8_lossy(&name).into_owned(),
        start,
        end,
        bias,
        eh_frame_hdr: table(hdr_addr, hdr_len),
        eh_frame_hdr_svma: hdr.p_vaddr,
        eh_frame: table(eh_frame_addr, eh_frame_len),
        eh_frame_svma,
    });
}

/// `ElfW(Dyn)`: one entry of a `PT_DYNAMIC` segment.
#[repr(C)]
#[derive(Clone, Copy)]
struct Dyn {
    tag: isize,
    val: usize,
}

const DT_NULL: isize = 0;
const DT_NEEDED: isize = 1;
const DT_STRTAB: isize = 5;
const DT_STRSZ: isize = 10;

/// The `DT_NEEDED` names of the executable: the shared objects the loader mapped for it before
/// `main`. Empty when its dynamic section cannot be read with confidence (a static executable,
/// a string table outside the object's mapping).
///
/// # Safety
///
/// `phdrs`, `bias`, `[start, end)` describe an object the loader has mapped.
unsafe fn needed_names(
    bias: u64,
    phdrs: &[libc::Elf64_Phdr],
    start: u64,
    end: u64,
) -> Vec<Vec<u8>> {
    const PT_DYNAMIC: u32 = 2;
    let Some(dynamic) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) else {
        return Vec::new();
    };
    let count = dynamic.p_memsz as usize / size_of::<Dyn>();
    // SAFETY: the PT_DYNAMIC segment of a loaded object is mapped at bias + p_vaddr and holds
    // p_memsz bytes of entries.
    let entries =
        unsafe { core::slice::from_raw_parts((bias + dynamic.p_vaddr) as *const Dyn, count) };
    let entries = entries
        .iter()
        .take_while(|d| d.tag != DT_NULL)
        .copied()
        .collect::<Vec<_>>();
    let value = |tag| entries.iter().find(|d| d.tag == tag).map(|d| d.val as u64);
    let (Some(strtab), Some(strsz)) = (value(DT_STRTAB), value(DT_STRSZ)) else {
        return Vec::new();
    };
    // glibc rewrites DT_STRTAB to its run-time address when the dynamic section is writable;
    // otherwise it is the file address. An address inside the mapping is the former.
    let strtab = if (start..end).contains(&strtab) {
        strtab
    } else {
        strtab.wrapping_add(bias)
    };
    if strtab < start || strtab.checked_add(strsz).is_none_or(|e| e > end) {
        return Vec::new();
    }
    // SAFETY: `[strtab, strtab + strsz)` lies inside the object's mapping (checked above).
    let strings = unsafe {
        core::slice::from_raw_parts(strtab as *const c_char as *const u8, strsz as usize)
    };
    entries
        .iter()
        .filter(|d| d.tag == DT_NEEDED)
        .filter_map(|d| {
            let tail = strings.get(d.val..)?;
            let len = tail.iter().position(|&b| b == 0)?;
            Some(tail.get(..len)?.to_vec())
        })
        .collect()
}

/// The file address of `.eh_frame` from an `.eh_frame_hdr` at file address `hdr_svma`: its
/// `eh_frame_ptr`, in the common encodings (pc-relative or absolute, 4 or 8 bytes).
fn eh_frame_address(hdr: &[u8], hdr_svma: u64) -> Option<u64> {
    const DW_EH_PE_ABSPTR: u8 = 0x00;
    const DW_EH_PE_UDATA4: u8 = 0x03;
    const DW_EH_PE_SDATA4: u8 = 0x0b;
    const DW_EH_PE_UDATA8: u8 = 0x04;
    const DW_EH_PE_SDATA8: u8 = 0x0c;
    const DW_EH_PE_PCREL: u8 = 0x10;
    let (&version, &enc) = (hdr.first()?, hdr.get(1)?);
    if version != 1 {
        return None;
    }
    let field = hdr.get(4..)?;
    let four = |b: &[u8]| -> Option<[u8; 4]> { b.get(..4)?.try_into().ok() };
    let eight = |b: &[u8]| -> Option<[u8; 8]> { b.get(..8)?.try_into().ok() };
    let value: i64 = match enc & 0x0f {
        DW_EH_PE_UDATA4 => i64::from(u32::from_ne_bytes(four(field)?)),
        DW_EH_PE_SDATA4 => i64::from(i32::from_ne_bytes(four(field)?)),
        DW_EH_PE_ABSPTR | DW_EH_PE_UDATA8 | DW_EH_PE_SDATA8 => i64::from_ne_bytes(eight(field)?),
        _ => return None,
    };
    match enc & 0x70 {
        0 => Some(value as u64),
        DW_EH_PE_PCREL => Some((hdr_svma + 4).wrapping_add(value as u64)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_and_its_dependencies_are_read_in_place_and_the_rest_copied() {
        let modules = unwind_modules();
        let exe = modules.first().expect("the executable has unwind tables");
        assert!(exe.name.is_empty(), "first object: {:?}", exe.name);
        assert!(!exe.eh_frame.is_copy() && !exe.eh_frame_hdr.is_copy());
        // The table is the executable's own mapped `.eh_frame`, not a copy of it.
        assert!((exe.start..exe.end).contains(&(exe.eh_frame.as_ptr() as u64)));
        let libc = modules
            .iter()
            .find(|m| m.name.rsplit('/').next() == Some("libc.so.6"))
            .expect("libc is loaded");
        assert!(!libc.eh_frame.is_copy(), "libc's tables are copied");
        // The vDSO is no dependency of the executable: the kernel maps it.
        if let Some(vdso) = modules.iter().find(|m| m.name.contains("vdso")) {
            assert!(
                vdso.eh_frame.is_copy(),
                "the vDSO's tables are used in place"
            );
        }
    }

    #[test]
    fn the_executables_dependencies_are_read_from_its_dynamic_section() {
        let mut collect = Collect {
            out: Vec::new(),
            first: true,
            needed: Vec::new(),
        };
        unsafe extern "C" fn first_only(
            info: *mut libc::dl_phdr_info,
            _size: libc::size_t,
            data: *mut c_void,
        ) -> c_int {
            // SAFETY: as in `unwind_modules`.
            let (collect, info) = unsafe { (&mut *data.cast::<Collect>(), &*info) };
            // SAFETY: as above.
            unsafe { visit(collect, info) };
            1
        }
        // SAFETY: as in `unwind_modules`; the callback stops after the executable.
        unsafe { libc::dl_iterate_phdr(Some(first_only), (&raw mut collect).cast()) };
        assert!(
            collect.needed.iter().any(|n| n.as_slice() == b"libc.so.6"),
            "{:?}",
            collect
                .needed
                .iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect::<Vec<_>>()
        );
    }
}
