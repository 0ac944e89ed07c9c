//! SQLite's process-wide settings, its memory routines over mimalloc, and mimalloc's
//! own settings: the store's only unsafe code (a foreign function interface), kept here
//! whole.

/// mimalloc's `mi_option_purge_delay`, number 15 in `mimalloc.h`'s `mi_option_e` (v2 and
/// v3 alike): the libmimalloc-sys crate names no constant for it. A test checks its
/// default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps pages no longer used before it gives them back.
const PURGE_DELAY_MS: std::os::raw::c_long = 10;

/// Has mimalloc give pages it no longer uses back to the system after 10 ms, not a
/// second (v3's default; v2's was 10 ms): a plan frees the directory's parsed entries
/// while it builds the changes, and with the long delay both stay resident, for a peak
/// a third higher (228 MB against 155 MB for a full plan of 100k users, 1.47 GB against
/// 1.24 GB for a plan of a million against an equal store). At 0 ms the memory is the
/// same, and the system time a little higher. `MIMALLOC_PURGE_DELAY` in the
/// environment, mimalloc's own setting, still wins.
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` takes any option and value, from any thread, at any
        // time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// Settings SQLite takes once per process, before anything uses it: its memory comes
/// from mimalloc, like the rest of the program's (the system allocator costs a large
/// apply several percent), and it keeps no memory statistics (they put a global mutex
/// around every allocation, and nothing reads them). Once SQLite has started, it
/// refuses both and keeps its defaults.
///
/// # Safety
///
/// SQLite's settings are not safe to change while another thread may be using or
/// starting SQLite: call this before any other thread exists (the binary does, first
/// thing).
pub unsafe fn configure_sqlite() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        use rusqlite::ffi;
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(sqlite_memory::malloc),
            xFree: Some(sqlite_memory::free),
            xRealloc: Some(sqlite_memory::realloc),
            xSize: Some(sqlite_memory::size),
            xRoundup: Some(sqlite_memory::roundup),
            xInit: Some(sqlite_memory::init),
            xShutdown: Some(sqlite_memory::shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to a `sqlite3_mem_methods`, which
        // SQLite copies; SQLITE_CONFIG_MEMSTATUS takes one int. Before SQLite is
        // initialised they take effect; afterwards they return SQLITE_MISUSE and change
        // nothing. No other thread uses SQLite meanwhile (the caller's promise).
        unsafe {
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods as *const _);
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
}

/// SQLite's memory routines over mimalloc (`sqlite3_mem_methods`). SQLite asks for less
/// than 2 GiB at a time and never for a negative size; mimalloc's blocks are aligned to
/// 8 bytes at least, as SQLite needs.
mod sqlite_memory {
    use std::os::raw::{c_int, c_void};

    use libmimalloc_sys::{mi_free, mi_good_size, mi_malloc, mi_realloc, mi_usable_size};

    fn bytes(n: c_int) -> usize {
        usize::try_from(n).unwrap_or(0)
    }

    pub(super) unsafe extern "C" fn malloc(n: c_int) -> *mut c_void {
        // SAFETY: any size may be asked of mimalloc.
        unsafe { mi_malloc(bytes(n)) }
    }

    pub(super) unsafe extern "C" fn free(p: *mut c_void) {
        // SAFETY: SQLite frees only what `malloc` or `realloc` gave it (or null).
        unsafe { mi_free(p) }
    }

    pub(super) unsafe extern "C" fn realloc(p: *mut c_void, n: c_int) -> *mut c_void {
        // SAFETY: as `free`.
        unsafe { mi_realloc(p, bytes(n)) }
    }

    pub(super) unsafe extern "C" fn size(p: *mut c_void) -> c_int {
        // SAFETY: as `free`; the size of null is 0.
        let size = unsafe { mi_usable_size(p) };
        c_int::try_from(size).unwrap_or(c_int::MAX)
    }

    pub(super) unsafe extern "C" fn roundup(n: c_int) -> c_int {
        // SAFETY: a pure size computation.
        let size = unsafe { mi_good_size(bytes(n)) };
        c_int::try_from(size).unwrap_or(n)
    }

    pub(super) unsafe extern "C" fn init(_: *mut c_void) -> c_int {
        rusqlite::ffi::SQLITE_OK
    }

    pub(super) unsafe extern "C" fn shutdown(_: *mut c_void) {}
}

#[cfg(test)]
mod tests {
    use super::MI_OPTION_PURGE_DELAY;

    /// The constant names the option it means: the purge delay is the option whose
    /// default is 1000 (ms, in mimalloc v3) and that the environment variable
    /// `MIMALLOC_PURGE_DELAY` sets.
    #[test]
    fn the_purge_delay_option_is_the_one_named() {
        // SAFETY: reads an option.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let expected = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(1000);
        assert_eq!(delay, expected);
    }
}
