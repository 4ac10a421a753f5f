//! The `landwatch` command: parses arguments, runs a command, maps the outcome to an exit code.
//!
//! Exit codes: 0 done; 2 done, but some inputs were skipped (each named in the output);
//! 1 failed (the error chain is printed, or the command named what failed, as `verify` does).

mod cli;
mod store_cli;

use std::process::ExitCode;

/// zlib-rs, linked in for its C functions only: `build.rs` puts every zlib function in the
/// executable's dynamic symbol table, so GDAL, libtiff and every other library call zlib-rs
/// instead of Debian's zlib 1.2.13 (libtiff inflates the bottom row of a GeoTIFF's tiles through
/// zlib: a 5000² scan ~0.06 s of CPU less).
use libz_rs_sys as _;

/// The scan allocates and frees arrays of a few megabytes per cell and stage; glibc hands those
/// back to the kernel at once and page-faults them in again (16 % of a scan's time went to the
/// kernel). mimalloc keeps freed pages for reuse.
#[global_allocator]
static GLOBAL: Allocator = Allocator;

/// Zeroed allocations of at least this many bytes are zeroed by writing (see [`Allocator`]).
const WRITE_ZEROS_FROM: usize = 64 << 10;

/// mimalloc, except that large zeroed allocations are always zeroed by writing.
///
/// mimalloc skips zeroing memory fresh from the kernel (it reads as zero). A sparse mask or
/// label array on such memory is mostly read, never written, so the kernel maps those pages to
/// its shared zero page; once the array is freed and the memory reused for another zeroed array,
/// mimalloc zeroes it, and every page's first write is then a copy-on-write fault with a TLB
/// flush on the other cores (an interrupt per page, dear on virtual machines). Writing the zeros
/// at once gives each page its own frame on the first touch. A 5000² scan: ~0.25 s less system
/// time, ~4 % less wall time (alternating rounds; 4 KiB and 64 KiB thresholds measured alike).
struct Allocator;

// SAFETY: every method forwards to mimalloc's own `GlobalAlloc` with the caller's arguments;
// `alloc_zeroed` returns memory from `alloc` of the same layout with all `layout.size()` bytes
// written to zero (or the null pointer `alloc` returned), as the trait requires.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        mimalloc::MiMalloc.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() < WRITE_ZEROS_FROM {
            return mimalloc::MiMalloc.alloc_zeroed(layout);
        }
        let ptr = mimalloc::MiMalloc.alloc(layout);
        if !ptr.is_null() {
            std::ptr::write_bytes(ptr, 0, layout.size());
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        mimalloc::MiMalloc.realloc(ptr, layout, new)
    }
}

/// mimalloc's `mi_option_purge_delay` (libmimalloc-sys 0.1.49 bundles mimalloc 3.3, where it is the
/// 16th option): -1 never returns freed pages to the kernel, so a cell's arrays reuse the pages of
/// the cell before (a 5000² scan: 2.4 s less system time, 90 MB more peak memory).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// GDAL (C++) allocates through glibc, not mimalloc: its block cache holds decoded blocks of a
/// few megabytes (2 MiB for a 512² block of four UInt16 bands), which glibc by default serves
/// from mappings of their own or hands back when its heaps shrink, so evicted blocks' memory is
/// page-faulted in again for the next ones. Only allocations above this size get a mapping of
/// their own; the blocks then come from the heaps and reuse what was freed (a 5000² scan:
/// ~22 000 fewer page faults, ~0.2 s less system time, 10–40 MB more peak memory).
const GLIBC_MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// glibc's heaps give memory back to the kernel only when this much is free at their top.
const GLIBC_TRIM_THRESHOLD: libc::c_int = 1 << 30;

/// Functions named and addressed only so that the linker keeps them (and the test can find them).
struct Keep<const N: usize>([(&'static std::ffi::CStr, *const ()); N]);
// SAFETY: the addresses are never dereferenced or called through this static.
unsafe impl<const N: usize> Sync for Keep<N> {}

/// A [`Keep`] of libdeflate-sys functions, each with its C name.
macro_rules! keep {
    ($($f:ident),* $(,)?) => {
        Keep([$((
            match std::ffi::CStr::from_bytes_with_nul(concat!(stringify!($f), "\0").as_bytes()) {
                Ok(name) => name,
                Err(_) => panic!("an identifier has no NUL inside"),
            },
            libdeflate_sys::$f as *const (),
        )),*])
    };
}

/// libdeflate 1.26 (libdeflate-sys, built from source into the binary) serves GDAL's and libtiff's
/// DEFLATE calls instead of Debian's libdeflate 1.14 (the same soname, so the same ABI), whose
/// decoder is ~25 % slower on imagery tiles: 212 → 268 MB/s per core on the peer scene's tiles,
/// a 5000² scan 0.4 CPU-s and ~8 % of its time shorter. Every function GDAL imports from
/// libdeflate is named here, so the linker keeps each one; the linker puts an executable's
/// definitions of symbols that a linked shared library (libgdal) uses in its dynamic symbol
/// table, and the dynamic linker looks symbols up in the executable first.
#[used]
static LIBDEFLATE: Keep<10> = keep![
    libdeflate_alloc_compressor,
    libdeflate_alloc_decompressor,
    libdeflate_free_compressor,
    libdeflate_free_decompressor,
    libdeflate_gzip_compress,
    libdeflate_gzip_compress_bound,
    libdeflate_gzip_decompress,
    libdeflate_zlib_compress,
    libdeflate_zlib_compress_bound,
    libdeflate_zlib_decompress,
];

fn main() -> ExitCode {
    if let Err(missing) = cpu_has_build_features() {
        eprintln!(
            "error: this landwatch was built for x86-64-v3 CPUs (.cargo/config.toml) and this CPU \
             lacks {missing}; build it for this machine with \
             RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release"
        );
        return ExitCode::from(1);
    }
    // SAFETY: sets a plain integer option of the allocator; no pointers involved.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // No transparent huge pages for this process: mimalloc asks for them on its arenas, and the
    // kernel then clears a whole 2 MiB page on the first touch of any part of it — most of the
    // kernel's share of a scan (first touches are dear on virtual machines). With 4 KiB pages a
    // 5000² scan spent ~0.4 s less system time and ~3 % less wall time (alternating rounds,
    // `MIMALLOC_ALLOW_THP=0` measured the same); user time rose ~0.1 s (more TLB misses).
    // SAFETY: a process flag with integer arguments only; fails harmlessly on kernels without it.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    // SAFETY: plain integer tuning parameters of glibc's malloc, set before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD);
    }
    reset_sigpipe();
    match cli::run() {
        Ok(cli::Outcome::Done) => ExitCode::SUCCESS,
        Ok(cli::Outcome::DoneWithSkips) => ExitCode::from(2),
        Ok(cli::Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes on one line, as `{:#}` prints them, except that a cause the line
/// already ends with is left out: landwatch's errors name their file and end with the operating
/// system's reason, which is also their source ("x.gpkg: Is a directory (os error 21)", not that
/// followed by ": Is a directory (os error 21)" again). A cause that only appears inside the
/// line is still added.
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !line.ends_with(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    line
}

/// The instruction sets this build's own code was compiled to use (`.cargo/config.toml` builds
/// for x86-64-v3), checked before anything else runs: on an older CPU the user gets a sentence
/// saying how to rebuild, not an illegal-instruction crash somewhere in the detector. The CPU is
/// asked through `/proc/cpuinfo`: `is_x86_feature_detected!` answers yes without asking in a
/// build that has the feature on. When the file cannot be read the run goes on.
fn cpu_has_build_features() -> Result<(), String> {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        let missing = missing_v3_features(&info);
        if !missing.is_empty() {
            return Err(missing.join(", "));
        }
    }
    Ok(())
}

/// The x86-64-v3 features (the level's additions to x86-64-v2) that the first `flags` line of a
/// `/proc/cpuinfo` text does not list (none when there is no such line: nothing to go by).
#[cfg_attr(
    not(all(target_arch = "x86_64", target_feature = "avx2")),
    allow(dead_code)
)]
fn missing_v3_features(cpuinfo: &str) -> Vec<&'static str> {
    let Some(flags) = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("flags")
            .and_then(|r| r.trim_start().strip_prefix(':'))
    }) else {
        return Vec::new();
    };
    let flags: Vec<&str> = flags.split_whitespace().collect();
    [
        ("AVX", "avx"),
        ("AVX2", "avx2"),
        ("BMI1", "bmi1"),
        ("BMI2", "bmi2"),
        ("F16C", "f16c"),
        ("FMA", "fma"),
        // LZCNT is listed as `abm`.
        ("LZCNT", "abm"),
        ("MOVBE", "movbe"),
        ("XSAVE", "xsave"),
    ]
    .into_iter()
    .filter(|(_, flag)| !flags.contains(flag))
    .map(|(name, _)| name)
    .collect()
}

/// `landwatch cases | head` should stop quietly like any Unix tool, not panic on a closed pipe:
/// Rust ignores SIGPIPE by default, so restore the default action.
fn reset_sigpipe() {
    // SAFETY: called once at start-up, before any thread is spawned; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    /// The CPU check reads the flags line and names each missing feature; a text without one
    /// stops nothing.
    #[test]
    fn the_cpu_check_names_the_missing_x86_64_v3_features() {
        let v3 =
            "processor\t: 0\nflags\t\t: fpu sse2 xsave avx f16c fma abm movbe bmi1 avx2 bmi2\n";
        assert!(super::missing_v3_features(v3).is_empty());
        let v2 = "processor\t: 0\nflags\t\t: fpu sse2 sse4_2 popcnt xsave avx\nbugs\t\t: fma\n";
        assert_eq!(
            super::missing_v3_features(v2),
            ["AVX2", "BMI1", "BMI2", "F16C", "FMA", "LZCNT", "MOVBE"]
        );
        let no_bmi2 = "flags\t\t: xsave avx f16c fma abm movbe bmi1 avx2\n";
        assert_eq!(super::missing_v3_features(no_bmi2), ["BMI2"]);
        assert!(super::missing_v3_features("processor\t: 0\n").is_empty());
        // This machine runs the tests, so it can run the build.
        assert_eq!(super::cpu_has_build_features(), Ok(()));
    }

    /// The option index is mimalloc's purge delay: its default in mimalloc 3.3 is 1000 ms.
    #[test]
    fn the_purge_delay_option_index_is_right() {
        // SAFETY: reads an integer option.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, 1000);
    }

    /// Large zeroed allocations are zero even on memory that held other values: freed arrays
    /// of junk, then zeroed arrays of the same size (which mimalloc hands the same memory).
    #[test]
    fn zeroed_allocations_are_zero_on_reused_memory() {
        for size in [
            super::WRITE_ZEROS_FROM - 1,
            super::WRITE_ZEROS_FROM,
            4 << 20,
        ] {
            for _ in 0..4 {
                drop(std::hint::black_box(vec![0xA5u8; size]));
                let z = std::hint::black_box(vec![0u8; size]);
                assert!(z.iter().all(|v| *v == 0), "{size} bytes");
            }
        }
    }

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::IsADirectory, "Is a directory");
        #[derive(Debug, thiserror::Error)]
        #[error("out/findings.gpkg: {source}")]
        struct Named {
            source: std::io::Error,
        }
        // A cause the message already says is not repeated; one it does not say is added.
        let e = anyhow::Error::new(Named { source: io() }).context("writing the outputs");
        assert_eq!(
            super::error_chain(&e),
            "writing the outputs: out/findings.gpkg: Is a directory"
        );
        let e = anyhow::Error::new(io()).context("out/findings.gpkg");
        assert_eq!(super::error_chain(&e), "out/findings.gpkg: Is a directory");
        // Found inside the line but not at its end: a cause of its own, kept.
        let e = anyhow::Error::new(io()).context("Is a directory expected at out/x");
        assert_eq!(
            super::error_chain(&e),
            "Is a directory expected at out/x: Is a directory"
        );
    }

    /// The dynamic linker resolves each libdeflate function GDAL uses to the binary's own copy
    /// (what GDAL and libtiff then call), not to the system library's.
    #[test]
    fn libdeflate_calls_resolve_to_the_binary_s_copy() {
        for &(name, own) in &super::LIBDEFLATE.0 {
            // SAFETY: looks a symbol up by a NUL-terminated name; nothing is called.
            let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
            assert_eq!(found as *const (), own, "{name:?}");
        }
    }

    /// Every zlib function `build.rs` exports resolves to the binary's zlib-rs, not to the
    /// system's zlib (loaded too: libgdal links it), so no stream is started by one zlib and
    /// continued by the other.
    #[test]
    fn zlib_calls_resolve_to_the_binary_s_zlib_rs() {
        let names: Vec<&str> = env!("LANDWATCH_ZLIB_FUNCTIONS").split(' ').collect();
        assert!(names.contains(&"inflate") && names.len() > 80, "{names:?}");
        // The system's zlib, loaded where it is not yet (the test binary does not link libgdal);
        // its symbols stay local to the handle.
        // SAFETY: loads a library whose initialisers are zlib's own (none that matter); nothing
        // is called through the handle.
        let system =
            unsafe { libc::dlopen(c"libz.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!system.is_null(), "the system's zlib cannot be loaded");
        for name in names {
            let c = std::ffi::CString::new(name).unwrap_or_default();
            // SAFETY: symbol lookups by NUL-terminated names; nothing is called.
            let (found, theirs) = unsafe {
                (
                    libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr()),
                    libc::dlsym(system, c.as_ptr()),
                )
            };
            // Not found: the executable does not export it (the system's zlib is local to its
            // handle here).
            assert!(!found.is_null(), "{name} is not found");
            assert!(
                !theirs.is_null(),
                "{name} is not a function of the system's zlib"
            );
            assert_ne!(found, theirs, "{name} resolves to the system's zlib");
        }
    }
}
