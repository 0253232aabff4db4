//! The process allocator: mimalloc (feature `mimalloc`, on by default).
//!
//! A /verify allocates a few hundred small, short-lived blocks (JSON, CBOR,
//! HTTP headers, futures) and frees them on the same thread; glibc malloc
//! spent about a tenth of the server's CPU on them. mimalloc's thread-local
//! free lists serve those in a fraction of the instructions.
//!
//! Built with `no_thp`: mimalloc otherwise asks the kernel for transparent
//! huge pages on its arenas (`madvise(MADV_HUGEPAGE)`), and on a kernel in
//! `madvise` mode every touched arena region then costs 2 MiB of resident
//! memory, which nearly doubled the footprint under load (BENCHMARKS.md).
//!
//! Declared in the library, so the binary, the benchmarks and the tests all
//! run on the allocator production uses. The fuzz targets build without the
//! feature: their sanitizers have to see every allocation.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Which allocator this build uses (for the startup log line).
pub const NAME: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};

/// Give memory that start-up used and freed back to the system, once the
/// service is built. Loading a large configuration (a devnet genesis of
/// 100,000 outputs is a 10 MB JSON file, read through generic trees before
/// the typed settings) peaks near 300 MiB; without this the allocator keeps
/// most of it (measured in BENCHMARKS.md, issue 15, point 4).
pub fn release_startup_heap() {
    #[cfg(feature = "mimalloc")]
    // SAFETY: mi_collect takes no pointers; it frees mimalloc's own unused
    // pages and may be called from any thread at any time.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    // Whatever C code allocated through glibc (and, without mimalloc, all of
    // Rust's heap) is trimmed the same way.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only releases free pages of
    // glibc's own heaps; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
