//! The crashing thread's CPU context in the layouts minidump readers expect: `CONTEXT_AMD64`
//! (1232 bytes) and `CONTEXT_ARM64` (912 bytes), filled from the report's register map.

use std::collections::BTreeMap;

use crate::buf::Buf;
use crate::error::Error;

/// `PROCESSOR_ARCHITECTURE_AMD64`.
pub(crate) const ARCH_AMD64: u16 = 9;
/// `PROCESSOR_ARCHITECTURE_ARM64`.
pub(crate) const ARCH_ARM64: u16 = 12;

const CONTEXT_AMD64: u32 = 0x0010_0000;
const CONTEXT_ARM64: u32 = 0x0040_0000;
/// `CONTEXT_CONTROL | CONTEXT_INTEGER`: the instruction and stack pointers, flags and the
/// integer registers are valid; floating point was not recorded.
const CONTROL_INTEGER: u32 = 0x1 | 0x2;
/// `CONTEXT_SEGMENTS` (x86-64 only).
const SEGMENTS: u32 = 0x4;

/// The context of one architecture, ready to write.
#[derive(Debug)]
pub(crate) struct Context {
    /// The `PROCESSOR_ARCHITECTURE_*` of the system-info stream.
    pub(crate) processor: u16,
    /// The raw context structure.
    pub(crate) bytes: Vec<u8>,
    /// The instruction pointer.
    pub(crate) ip: u64,
    /// The stack pointer.
    pub(crate) sp: u64,
}

fn reg(regs: &BTreeMap<String, String>, name: &str) -> u64 {
    regs.get(name)
        .and_then(|v| {
            let digits = v.strip_prefix("0x").unwrap_or(v);
            u64::from_str_radix(digits, 16).ok()
        })
        .unwrap_or(0)
}

/// Builds the context for `arch` (`x86_64` or `aarch64`) from the recorded registers.
pub(crate) fn build(arch: &str, regs: &BTreeMap<String, String>) -> Result<Context, Error> {
    match arch {
        "x86_64" => Ok(amd64(regs)),
        "aarch64" => Ok(arm64(regs)),
        other => Err(Error::UnsupportedArch(other.to_owned())),
    }
}

fn amd64(regs: &BTreeMap<String, String>) -> Context {
    let r = |n| reg(regs, n);
    let mut b = Buf::default();
    b.zeros(6 * 8); // p1home..p6home
    b.u32(CONTEXT_AMD64 | CONTROL_INTEGER | SEGMENTS);
    b.u32(0); // mx_csr
    b.u16(r("cs") as u16);
    b.u16(0); // ds
    b.u16(0); // es
    b.u16(r("fs") as u16);
    b.u16(r("gs") as u16);
    b.u16(0); // ss
    b.u32(r("rflags") as u32);
    b.zeros(6 * 8); // dr0-dr3, dr6, dr7
    for name in [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15", "rip",
    ] {
        b.u64(r(name));
    }
    // Floating-point save area (512), vector registers (26 × 16), vector control, debug
    // control and the four last-branch/exception addresses: not recorded.
    b.zeros(512 + 26 * 16 + 6 * 8);
    Context {
        processor: ARCH_AMD64,
        bytes: b.into_bytes(),
        ip: r("rip"),
        sp: r("rsp"),
    }
}

fn arm64(regs: &BTreeMap<String, String>) -> Context {
    let r = |n: &str| reg(regs, n);
    let mut b = Buf::default();
    b.u32(CONTEXT_ARM64 | CONTROL_INTEGER);
    b.u32(r("pstate") as u32); // cpsr
    for i in 0..31 {
        b.u64(r(&format!("x{i}")));
    }
    b.u64(r("sp"));
    b.u64(r("pc"));
    // Floating-point registers (32 × 16), fpcr, fpsr, and the debug registers: not recorded.
    b.zeros(32 * 16 + 4 + 4 + 8 * 4 + 8 * 8 + 2 * 4 + 2 * 8);
    Context {
        processor: ARCH_ARM64,
        bytes: b.into_bytes(),
        ip: r("pc"),
        sp: r("sp"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(pairs: &[(&str, u64)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), format!("{v:#x}")))
            .collect()
    }

    #[test]
    fn layouts_have_the_sizes_readers_check() {
        let c = build("x86_64", &regs(&[("rip", 0x1234), ("rsp", 0x7ff0)])).expect("amd64");
        assert_eq!(c.bytes.len(), 1232);
        assert_eq!(&c.bytes[248..256], &0x1234u64.to_le_bytes(), "rip at 248");
        assert_eq!(&c.bytes[152..160], &0x7ff0u64.to_le_bytes(), "rsp at 152");
        assert_eq!((c.ip, c.sp), (0x1234, 0x7ff0));
        let c = build("aarch64", &regs(&[("pc", 0x40), ("sp", 0x80), ("x29", 7)])).expect("arm64");
        assert_eq!(c.bytes.len(), 912);
        assert_eq!(&c.bytes[8 + 29 * 8..8 + 30 * 8], &7u64.to_le_bytes());
        assert_eq!(&c.bytes[264..272], &0x40u64.to_le_bytes(), "pc at 264");
        assert!(matches!(
            build("mips", &regs(&[])),
            Err(Error::UnsupportedArch(_))
        ));
    }
}
