//! A kernel's function names, read from its vmlinux's symbol table (the `object` crate),
//! for saying where a vCPU is: `default_idle+0x1e` rather than `0xffffffff8101b91e`.

use std::path::Path;

use object::{Object, ObjectSymbol, SymbolKind};

/// The kernel's functions, by start address.
#[derive(Debug, Default)]
pub struct Symbols {
    /// (start, size, name), sorted by start.
    functions: Vec<(u64, u64, String)>,
}

impl Symbols {
    /// The functions named in the file at `path`: an ELF file (a vmlinux that kept its
    /// symbol table) or a `System.map`.
    pub fn from_file(path: &Path) -> Result<Symbols, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        match super::image_info::is_elf(&bytes) {
            true => Symbols::from_elf(&bytes),
            false => Symbols::from_system_map(&String::from_utf8_lossy(&bytes)),
        }
        .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// A `System.map`: `ffffffff81000000 T _text` lines; the text symbols (`t`/`T`) are
    /// the functions, each reaching the next (the map gives no sizes).
    pub fn from_system_map(text: &str) -> Result<Symbols, String> {
        let mut functions: Vec<(u64, u64, String)> = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (addr, kind, name) = (f.next()?, f.next()?, f.next()?);
                matches!(kind, "t" | "T")
                    .then(|| Some((u64::from_str_radix(addr, 16).ok()?, 0, name.to_string())))?
            })
            .collect();
        if functions.is_empty() {
            return Err("no function in this System.map".into());
        }
        functions.sort();
        Ok(Symbols { functions })
    }

    pub fn from_elf(bytes: &[u8]) -> Result<Symbols, String> {
        let file = object::File::parse(bytes).map_err(|e| e.to_string())?;
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
            .filter(|(_, _, name)| !name.is_empty())
            .collect();
        if functions.is_empty() {
            return Err("no function symbols (a stripped image)".into());
        }
        functions.sort();
        Ok(Symbols { functions })
    }

    /// `name+0xoffset` for an address inside a function: within its size when the symbol
    /// has one, else before the next function.
    pub fn name(&self, addr: u64) -> Option<String> {
        let at = self
            .functions
            .partition_point(|(start, _, _)| *start <= addr);
        let (start, size, name) = self.functions.get(at.checked_sub(1)?)?;
        let end = match *size {
            0 => self
                .functions
                .get(at)
                .map_or(u64::MAX, |(next, _, _)| *next),
            size => start + size,
        };
        (addr < end).then(|| format!("{name}+{:#x}", addr - start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(functions: &[(u64, u64, &str)]) -> Symbols {
        Symbols {
            functions: functions
                .iter()
                .map(|(a, s, n)| (*a, *s, n.to_string()))
                .collect(),
        }
    }

    #[test]
    fn an_address_is_named_by_the_function_that_holds_it() {
        let s = symbols(&[
            (0x1000, 0x20, "first"),
            (0x1040, 0, "unsized"),
            (0x1100, 0x10, "last"),
        ]);
        assert_eq!(s.name(0x1000).as_deref(), Some("first+0x0"));
        assert_eq!(s.name(0x101f).as_deref(), Some("first+0x1f"));
        // Past the end of a sized function, before the next: no function holds it.
        assert_eq!(s.name(0x1020), None);
        // An unsized symbol reaches the next one.
        assert_eq!(s.name(0x10ff).as_deref(), Some("unsized+0xbf"));
        assert_eq!(s.name(0x110f).as_deref(), Some("last+0xf"));
        assert_eq!(s.name(0x1110), None);
        assert_eq!(s.name(0xfff), None);
    }

    #[test]
    fn a_system_maps_text_symbols_are_the_functions() {
        let map = "ffffffff81000000 T _text\nffffffff81000000 T startup_64\n\
                   ffffffff81001000 t amd_e400_idle\nffffffff81001080 D some_data\n\
                   ffffffff81002000 T do_idle\n";
        let s = Symbols::from_system_map(map).unwrap();
        assert_eq!(
            s.name(0xffff_ffff_8100_101e).as_deref(),
            Some("amd_e400_idle+0x1e")
        );
        // Data is not a function: the one before still holds the address.
        assert_eq!(
            s.name(0xffff_ffff_8100_1090).as_deref(),
            Some("amd_e400_idle+0x90")
        );
        assert_eq!(
            s.name(0xffff_ffff_8100_2004).as_deref(),
            Some("do_idle+0x4")
        );
        assert!(Symbols::from_system_map("not a map").is_err());
    }

    /// A real ELF file: this test's own executable names its functions.
    #[test]
    fn an_elf_files_functions_are_read() {
        let exe = std::env::current_exe().unwrap();
        let s = Symbols::from_file(&exe).unwrap();
        let (start, _, _) = s.functions.iter().find(|(_, size, _)| *size > 8).unwrap();
        let name = s.name(start + 4).unwrap();
        assert!(name.ends_with("+0x4"), "{name}");
        assert!(Symbols::from_elf(b"not an ELF file").is_err());
    }
}
