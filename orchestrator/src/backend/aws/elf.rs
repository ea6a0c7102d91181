//! Which GLIBC symbol versions a binary needs (`.gnu.version_r`) and for which symbols, read with the `object` crate.
//!
//! A Lambda `provided.*` runtime ships one glibc; a binary that needs a newer
//! `GLIBC_2.x` symbol version fails at start-up with "version `GLIBC_2.x' not
//! found", before it can report anything. Checking the zip at package time
//! turns that into a build error.

use std::collections::BTreeMap;
use std::fmt;

use object::Endianness;
use object::elf::{FileHeader64, PT_INTERP, SHT_DYNSYM};
use object::read::elf::{FileHeader, ProgramHeader, Sym};

/// Why a file could not be read as ELF.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file at all.
    #[error("not an ELF file (bad magic)")]
    NotElf,
    /// An ELF variant this reader does not handle.
    #[error("unsupported ELF file: {0}")]
    Unsupported(&'static str),
    /// A header or table points outside the file, or is malformed.
    #[error("truncated or corrupt ELF file: {0}")]
    Corrupt(#[source] object::read::Error),
}

impl From<object::read::Error> for ElfError {
    fn from(e: object::read::Error) -> Self {
        Self::Corrupt(e)
    }
}

/// A `GLIBC_x.y[.z]` version, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GlibcVersion(pub u32, pub u32, pub u32);

impl GlibcVersion {
    /// Parses `GLIBC_2.34` or `GLIBC_2.2.5`; other names (`GLIBC_PRIVATE`, `GCC_3.0`) are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("GLIBC_")?;
        let mut it = rest.split('.').map(|p| p.parse::<u32>());
        let major = it.next()?.ok()?;
        let minor = it.next()?.ok()?;
        let patch = match it.next() {
            Some(p) => p.ok()?,
            None => 0,
        };
        Some(Self(major, minor, patch))
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.2 == 0 {
            write!(f, "{}.{}", self.0, self.1)
        } else {
            write!(f, "{}.{}.{}", self.0, self.1, self.2)
        }
    }
}

/// What a dynamically linked binary needs from its shared libraries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionNeeds {
    /// ELF machine (`e_machine`): 62 = x86_64, 183 = aarch64.
    pub machine: u16,
    /// Whether the file has a `PT_INTERP` program header (a dynamic executable).
    pub has_interpreter: bool,
    /// (library, version name) → undefined symbols bound to it.
    pub needs: BTreeMap<(String, String), Vec<String>>,
}

/// `e_machine` of x86_64.
pub const EM_X86_64: u16 = object::elf::EM_X86_64.0;
/// `e_machine` of aarch64.
pub const EM_AARCH64: u16 = object::elf::EM_AARCH64.0;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads the version requirements of an ELF64 file (x86_64, aarch64).
pub fn version_needs(data: &[u8]) -> Result<VersionNeeds, ElfError> {
    if data.len() < 16 || &data[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    // `object` would say only "Unsupported ELF header"; the class is the likely reason.
    if data[4] != object::elf::ELFCLASS64.0 {
        return Err(ElfError::Unsupported(
            "32-bit ELF (Lambda runs 64-bit binaries)",
        ));
    }
    let header = FileHeader64::<Endianness>::parse(data)?;
    let endian = header.endian()?;
    let has_interpreter = header
        .program_headers(endian, data)?
        .iter()
        .any(|p| p.p_type(endian) == PT_INTERP);
    let sections = header.sections(endian, data)?;

    // Every (library, version) the binary requires, even those no symbol names.
    let mut needs: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    if let Some((mut verneeds, link)) = sections.gnu_verneed(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((verneed, mut auxes)) = verneeds.next()? {
            let file = text(verneed.file(endian, strings)?);
            while let Some(aux) = auxes.next()? {
                needs
                    .entry((file.clone(), text(aux.name(endian, strings)?)))
                    .or_default();
            }
        }
    }
    if let Some(versions) = sections.versions(endian, data)? {
        let symbols = sections.symbols(endian, data, SHT_DYNSYM)?;
        for (index, sym) in symbols.enumerate() {
            if !sym.is_undefined(endian) {
                continue; // defined here, not needed from a library
            }
            let version = versions.version(versions.version_index(endian, index).index())?;
            if let Some(file) = version.and_then(|v| Some((v.file()?, v.name()))) {
                let name = text(sym.name(endian, symbols.strings())?);
                needs
                    .entry((text(file.0), text(file.1)))
                    .or_default()
                    .push(name);
            }
        }
    }
    Ok(VersionNeeds {
        machine: header.e_machine(endian).0,
        has_interpreter,
        needs,
    })
}

impl VersionNeeds {
    /// Every GLIBC version needed, with the symbols that need it, newest first.
    pub fn glibc(&self) -> Vec<(GlibcVersion, Vec<String>)> {
        let mut out: BTreeMap<GlibcVersion, Vec<String>> = BTreeMap::new();
        for ((_, name), syms) in &self.needs {
            if let Some(v) = GlibcVersion::parse(name) {
                out.entry(v).or_default().extend(syms.iter().cloned());
            }
        }
        out.into_iter().rev().collect()
    }

    /// The newest GLIBC version needed, if the binary links glibc at all.
    pub fn max_glibc(&self) -> Option<GlibcVersion> {
        self.glibc().first().map(|(v, _)| *v)
    }

    /// Versions newer than `limit`, each with up to three example symbols, for error messages.
    pub fn above(&self, limit: GlibcVersion) -> Vec<String> {
        self.glibc()
            .into_iter()
            .filter(|(v, _)| *v > limit)
            .map(|(v, syms)| {
                let mut s: Vec<String> = syms.into_iter().take(3).collect();
                if s.is_empty() {
                    s.push("(no symbol named)".into());
                }
                format!("GLIBC_{v} ({})", s.join(", "))
            })
            .collect()
    }
}

/// Builds a minimal ELF64 file whose `.gnu.version_r` needs `versions` from libc.so.6,
/// one undefined symbol `sym_<i>` per version (test fixtures, here and in integration tests).
///
/// Hand-written on purpose: no toolchain can produce a binary needing an arbitrary
/// `GLIBC_x.y` on demand, and `object`'s writer is not worth a dependency feature for tests.
/// That [`version_needs`] (the `object` reader) accepts it keeps this generator honest.
pub fn synthetic_elf(machine: u16, versions: &[&str]) -> Vec<u8> {
    // Layout: header (64) | dynstr | dynsym | versym | verneed | section headers.
    let mut dynstr = vec![0u8];
    let mut add = |s: &str| {
        let off = dynstr.len() as u32;
        dynstr.extend_from_slice(s.as_bytes());
        dynstr.push(0);
        off
    };
    let libc = add("libc.so.6");
    let names: Vec<u32> = versions.iter().map(|v| add(v)).collect();
    let syms: Vec<u32> = (0..versions.len())
        .map(|i| add(&format!("sym_{i}")))
        .collect();
    let align = |v: &mut Vec<u8>| {
        while !v.len().is_multiple_of(8) {
            v.push(0);
        }
    };
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
    let dynstr_off = out.len() as u64;
    out.extend_from_slice(&dynstr);
    align(&mut out);
    let dynsym_off = out.len() as u64;
    out.extend_from_slice(&[0u8; 24]);
    for &name in &syms {
        let mut e = [0u8; 24];
        e[..4].copy_from_slice(&name.to_le_bytes());
        e[4] = 0x12; // global function
        out.extend_from_slice(&e);
    }
    let versym_off = out.len() as u64;
    out.extend_from_slice(&0u16.to_le_bytes());
    for i in 0..versions.len() {
        out.extend_from_slice(&(i as u16 + 2).to_le_bytes());
    }
    align(&mut out);
    let verneed_off = out.len() as u64;
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(versions.len() as u16).to_le_bytes());
    out.extend_from_slice(&libc.to_le_bytes());
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for (i, &name) in names.iter().enumerate() {
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(i as u16 + 2).to_le_bytes());
        out.extend_from_slice(&name.to_le_bytes());
        let next: u32 = if i + 1 < names.len() { 16 } else { 0 };
        out.extend_from_slice(&next.to_le_bytes());
    }
    align(&mut out);
    let shoff = out.len() as u64;
    let shdr = |kind: u32, off: u64, size: u64, link: u32, info: u32, entsize: u64| {
        let mut h = [0u8; 64];
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[24..32].copy_from_slice(&off.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        h[40..44].copy_from_slice(&link.to_le_bytes());
        h[44..48].copy_from_slice(&info.to_le_bytes());
        h[56..64].copy_from_slice(&entsize.to_le_bytes());
        h
    };
    let n = versions.len() as u64;
    out.extend_from_slice(&[0u8; 64]);
    // Section types: 3 strtab, 11 dynsym, 0x6fffffff versym, 0x6ffffffe verneed.
    out.extend_from_slice(&shdr(3, dynstr_off, dynstr.len() as u64, 0, 0, 0));
    out.extend_from_slice(&shdr(11, dynsym_off, 24 * (n + 1), 1, 1, 24));
    out.extend_from_slice(&shdr(0x6fff_ffff, versym_off, 2 * (n + 1), 2, 0, 2));
    out.extend_from_slice(&shdr(0x6fff_fffe, verneed_off, 16 + 16 * n, 1, 1, 0));
    out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    out[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    out[0x3c..0x3e].copy_from_slice(&5u16.to_le_bytes());
    // Section names come from dynstr (all empty): readers require a name table.
    out[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        let v = |s| GlibcVersion::parse(s).unwrap();
        assert!(v("GLIBC_2.34") > v("GLIBC_2.4"));
        assert!(v("GLIBC_2.2.5") > v("GLIBC_2.2"));
        assert!(v("GLIBC_2.26") < v("GLIBC_2.30"));
        assert_eq!(GlibcVersion::parse("GLIBC_PRIVATE"), None);
        assert_eq!(GlibcVersion::parse("GCC_3.0"), None);
        assert_eq!(v("GLIBC_2.2.5").to_string(), "2.2.5");
    }

    #[test]
    fn reads_a_synthetic_verneed_table() {
        let elf = synthetic_elf(
            EM_X86_64,
            &["GLIBC_2.2.5", "GLIBC_2.34", "GLIBC_PRIVATE", "GLIBC_2.17"],
        );
        let needs = version_needs(&elf).unwrap();
        assert_eq!(needs.machine, EM_X86_64);
        assert_eq!(needs.max_glibc(), Some(GlibcVersion(2, 34, 0)));
        let above = needs.above(GlibcVersion(2, 26, 0));
        assert_eq!(above, vec!["GLIBC_2.34 (sym_1)".to_owned()]);
        assert!(needs.above(GlibcVersion(2, 34, 0)).is_empty());
        assert_eq!(needs.needs.len(), 4);
    }

    #[test]
    fn rejects_non_elf_and_truncated_files() {
        assert_eq!(
            version_needs(b"#!/bin/sh\necho hi\n").unwrap_err(),
            ElfError::NotElf
        );
        let mut elf = synthetic_elf(EM_X86_64, &["GLIBC_2.17"]);
        let mut elf32 = elf.clone();
        elf32[4] = 1;
        assert_eq!(
            version_needs(&elf32).unwrap_err().to_string(),
            "unsupported ELF file: 32-bit ELF (Lambda runs 64-bit binaries)"
        );
        elf.truncate(elf.len() - 100);
        assert!(matches!(version_needs(&elf), Err(ElfError::Corrupt(_))));
    }

    /// The test binary itself links the host glibc: what it needs must be known
    /// versions no newer than the glibc it is running on right now.
    #[test]
    fn reads_this_test_binary() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let needs = version_needs(&exe).unwrap();
        assert!(needs.has_interpreter);
        let max = needs
            .max_glibc()
            .expect("a gnu-target test binary links glibc");
        // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
        let running = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
        let running = GlibcVersion::parse(&format!("GLIBC_{}", running.to_str().unwrap())).unwrap();
        assert!(max <= running, "needs {max}, running {running}");
        assert!(max >= GlibcVersion(2, 2, 5), "{max}");
        let syms: usize = needs.glibc().iter().map(|(_, s)| s.len()).sum();
        assert!(
            syms > 10,
            "expected many versioned glibc symbols, saw {syms}"
        );
    }
}
