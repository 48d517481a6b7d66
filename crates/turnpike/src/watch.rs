//! Noticing a renewed TLS certificate without a SIGHUP: certbot and cert-manager replace
//! the `[tls]` files and tell nobody.
//!
//! Every `[tls] watch_interval_secs` the two files' metadata is read (`stat`, following
//! symlinks: Kubernetes mounts a secret as symlinks into a directory it swaps, so the
//! target's inode is what changes) and compared with the metadata they had when the
//! certificate in force was loaded. When it differs, the caller tries the pair and, if it
//! loads, applies the whole file as a SIGHUP does ([`crate::operate`]). A pair caught
//! half-written (a new certificate beside the old key) does not load: it is reported once
//! and tried again on the next look, while the certificate in force stays. Two `stat`
//! calls per interval is all it costs; no inotify, which misses a swapped symlink's target
//! and needs a watch per directory.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;
use turnpike_server::TlsFiles;

/// What identifies one version of a file: device, inode, size, modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// The certificate's and the key's stamps; `None` for a file that cannot be read now
/// (being replaced, or removed).
pub(crate) type PairStamp = [Option<FileStamp>; 2];

fn stamp_of(path: &Path) -> Option<FileStamp> {
    // `metadata` follows symlinks, which is what makes a swapped symlink count.
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

/// The stamps of `files` now.
pub(crate) fn stamp(files: &TlsFiles) -> PairStamp {
    [stamp_of(&files.cert), stamp_of(&files.key)]
}

/// The watch over the `[tls]` files in force.
#[derive(Debug)]
pub(crate) struct CertWatch {
    /// The files and how often to look; `None` when there is no `[tls]` or the interval
    /// is 0.
    watched: Option<(TlsFiles, Duration)>,
    /// The stamps the certificate in force was loaded with.
    in_force: PairStamp,
    /// The stamps of the last pair that failed to load, so a failure is reported once.
    failed: Option<PairStamp>,
    /// When to look next.
    next: Instant,
}

impl CertWatch {
    /// A watch over `tls`, whose files have just been (or are about to be) loaded with
    /// `stamps` (taken before they were read, so a change while reading is seen later).
    pub(crate) fn new(tls: Option<&TlsFiles>, stamps: PairStamp) -> Self {
        let watched = tls
            .filter(|t| t.watch_interval_secs > 0)
            .map(|t| (t.clone(), Duration::from_secs(t.watch_interval_secs)));
        let next = Instant::now() + watched.as_ref().map_or(Duration::ZERO, |w| w.1);
        Self {
            watched,
            in_force: stamps,
            failed: None,
            next,
        }
    }

    /// When to look next; `None` when not watching.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.watched.as_ref().map(|_| self.next)
    }

    /// Looks at the files (at the deadline) and schedules the next look. Returns the files
    /// and their new stamps when they differ from those in force.
    pub(crate) fn look(&mut self) -> Option<(TlsFiles, PairStamp)> {
        let (files, interval) = self.watched.as_ref()?;
        self.next = Instant::now() + *interval;
        let now = stamp(files);
        (now != self.in_force).then(|| (files.clone(), now))
    }

    /// The pair with `stamps` did not load; true the first time for these stamps (the
    /// caller reports it then, and quietly tries again on later looks).
    pub(crate) fn failed(&mut self, stamps: PairStamp) -> bool {
        let first = self.failed != Some(stamps);
        self.failed = Some(stamps);
        first
    }

    /// Whether the pair with `stamps` is tried for the first time (it has not failed
    /// before).
    pub(crate) fn first_try(&self, stamps: PairStamp) -> bool {
        self.failed != Some(stamps)
    }

    /// The interval, for messages; zero when not watching.
    pub(crate) fn interval(&self) -> Duration {
        self.watched.as_ref().map_or(Duration::ZERO, |w| w.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, interval: u64) -> TlsFiles {
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            watch_interval_secs: interval,
        }
    }

    fn scratch(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("turnpike-watch-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_change_in_place_or_by_symlink_is_seen_once_loaded() {
        let dir = scratch("change");
        std::fs::create_dir_all(dir.join("v1")).unwrap();
        std::fs::create_dir_all(dir.join("v2")).unwrap();
        for v in ["v1", "v2"] {
            std::fs::write(dir.join(v).join("cert.pem"), format!("{v} cert")).unwrap();
            std::fs::write(dir.join(v).join("key.pem"), format!("{v} key")).unwrap();
        }
        // cert.pem -> data/cert.pem, data -> v1: as Kubernetes mounts a secret.
        std::os::unix::fs::symlink("v1", dir.join("data")).unwrap();
        for f in ["cert.pem", "key.pem"] {
            std::os::unix::fs::symlink(format!("data/{f}"), dir.join(f)).unwrap();
        }
        let tls = files(&dir, 1);
        let mut watch = CertWatch::new(Some(&tls), stamp(&tls));
        assert_eq!(watch.look(), None, "nothing changed");

        // The target changes size in place.
        std::fs::write(dir.join("v1/key.pem"), "v1 key, renewed").unwrap();
        let (_, seen) = watch.look().expect("a change in place");
        assert_eq!(
            watch.look().map(|c| c.1),
            Some(seen),
            "not loaded: seen again"
        );
        assert!(watch.first_try(seen));
        assert!(watch.failed(seen), "first failure is reported");
        assert!(!watch.first_try(seen));
        assert!(!watch.failed(seen), "the same pair again is not");
        watch = CertWatch::new(Some(&tls), seen);
        assert_eq!(watch.look(), None, "in force now");

        // The directory symlink is swapped atomically (same sizes, other inodes).
        std::os::unix::fs::symlink("v2", dir.join("data.new")).unwrap();
        std::fs::rename(dir.join("data.new"), dir.join("data")).unwrap();
        assert!(watch.look().is_some(), "a swapped symlink");

        // A removed file counts as a change too (and will not load).
        std::fs::remove_file(dir.join("v2/key.pem")).unwrap();
        let (_, gone) = watch.look().unwrap();
        assert_eq!(gone[1], None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn interval_zero_or_no_tls_means_no_watch() {
        let dir = scratch("off");
        let mut off = CertWatch::new(Some(&files(&dir, 0)), [None, None]);
        assert_eq!(off.deadline(), None);
        assert_eq!(off.look(), None);
        assert_eq!(CertWatch::new(None, [None, None]).deadline(), None);
        let before = Instant::now();
        let on = CertWatch::new(Some(&files(&dir, 7)), [None, None]);
        assert_eq!(on.interval(), Duration::from_secs(7));
        let next = on.deadline().expect("watching");
        assert!(
            next >= before + Duration::from_secs(7)
                && next <= Instant::now() + Duration::from_secs(7)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
