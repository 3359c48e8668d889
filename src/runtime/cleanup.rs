//! Temporary files to remove when lza is stopped by a signal.
//!
//! `create` writes the archive under a temporary name (`.lza-*`) and
//! `extract` each file (`.lza-tmp-*`); on any error their owners remove
//! them. A signal that ends the process (SIGINT, SIGTERM, SIGHUP) runs no
//! destructor, so every such file is registered here while it exists, and
//! the binary's signal thread calls [`remove_all`] before it lets the
//! signal end the process. SIGKILL cannot be caught: after one, a
//! temporary file may remain, never under a final name.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;

enum Place {
    /// A path relative to the working directory or absolute.
    Path(CString),
    /// A name in a directory whose descriptor the owner keeps open for as
    /// long as the registration lives.
    At(RawFd, CString),
}

impl Place {
    // the descriptor is borrowed, not owned: the owner closes it
    #[allow(unsafe_code)]
    fn remove(&self) {
        match self {
            Place::Path(p) => {
                let _ = rustix::fs::unlink(p.as_c_str());
            }
            Place::At(fd, name) => {
                // SAFETY: the owner keeps `fd` open until its registration is
                // dropped, which takes the registry's lock first.
                let dir = unsafe { BorrowedFd::borrow_raw(*fd) };
                let _ = rustix::fs::unlinkat(dir, name.as_c_str(), rustix::fs::AtFlags::empty());
            }
        }
    }
}

struct Registry {
    next: u64,
    files: Vec<(u64, Place)>,
    /// Set once [`remove_all`] ran: the process is ending.
    closing: bool,
}

type Shared = Mutex<Registry>;

static REGISTRY: Shared = Registry::new();

impl Registry {
    const fn new() -> Shared {
        Mutex::new(Registry {
            next: 0,
            files: Vec::new(),
            closing: false,
        })
    }
}

fn lock(r: &'static Shared) -> std::sync::MutexGuard<'static, Registry> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registered temporary file; dropping it (once the file was renamed to
/// its final name or removed) takes it off the list.
#[must_use = "the file is unregistered when this is dropped"]
pub struct Registration(&'static Shared, u64);

impl Drop for Registration {
    fn drop(&mut self) {
        lock(self.0).files.retain(|(id, _)| *id != self.1);
    }
}

fn register(reg: &'static Shared, place: Option<Place>) -> Registration {
    let mut r = lock(reg);
    let Some(place) = place else {
        return Registration(reg, 0); // a path with NUL cannot exist
    };
    if r.closing {
        // created after the others were removed: the process is ending
        place.remove();
        return Registration(reg, 0);
    }
    r.next += 1;
    let id = r.next;
    r.files.push((id, place));
    Registration(reg, id)
}

fn path_place(path: &Path) -> Option<Place> {
    CString::new(path.as_os_str().as_bytes())
        .ok()
        .map(Place::Path)
}

fn at_place(dir: BorrowedFd<'_>, name: &str) -> Option<Place> {
    CString::new(name)
        .ok()
        .map(|n| Place::At(dir.as_raw_fd(), n))
}

fn remove_all_in(reg: &'static Shared) {
    let mut r = lock(reg);
    r.closing = true;
    for (_, place) in r.files.drain(..) {
        place.remove();
    }
}

/// Register the file at `path`.
pub fn register_path(path: &Path) -> Registration {
    register(&REGISTRY, path_place(path))
}

/// Register the file `name` in the directory `dir`, which must stay open
/// until the registration is dropped.
pub fn register_at(dir: BorrowedFd<'_>, name: &str) -> Registration {
    register(&REGISTRY, at_place(dir, name))
}

/// Remove every registered file; files registered afterwards are removed
/// at once. For the signal thread, just before the process ends.
pub fn remove_all() {
    remove_all_in(&REGISTRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_files_are_removed_and_unregistered_ones_kept() {
        let reg: &'static Shared = Box::leak(Box::new(Registry::new()));
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join(".lza-a");
        let kept = dir.path().join(".lza-kept");
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&kept, b"k").unwrap();
        std::fs::write(dir.path().join(".lza-tmp-b"), b"b").unwrap();
        let d = std::fs::File::open(dir.path()).unwrap();
        let ra = register(reg, path_place(&a));
        let rb = register(reg, at_place(std::os::fd::AsFd::as_fd(&d), ".lza-tmp-b"));
        drop(register(reg, path_place(&kept))); // renamed or removed by its owner
        assert_eq!(lock(reg).files.len(), 2);
        remove_all_in(reg);
        assert!(!a.exists());
        assert!(!dir.path().join(".lza-tmp-b").exists());
        assert!(kept.exists());
        let late = dir.path().join(".lza-late");
        std::fs::write(&late, b"l").unwrap();
        let _rl = register(reg, path_place(&late));
        assert!(
            !late.exists(),
            "registered after remove_all: removed at once"
        );
        drop((ra, rb));
        assert!(lock(reg).files.is_empty());
    }
}
