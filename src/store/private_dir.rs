//! The data directory holds every company's WhatsApp credentials, so it is
//! private to the gateway's user: the directory and its sub-directories
//! `0700`, its files `0600`. Checked and tightened at every start, with a
//! warning when something was looser (a directory created by hand, a backup
//! restored with other permissions). A `0700` directory also covers files
//! sled creates later, whatever the process's umask.

use std::io;
use std::path::Path;

/// Creates `dir` if needed and tightens it and everything below it. Returns
/// how many directories were looser than private: those exposed the files in
/// them. A looser file inside a private directory (sled creates its files
/// with the umask) exposed nothing and is tightened silently.
#[cfg(unix)]
pub(crate) fn make_private(dir: &Path) -> io::Result<usize> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};

    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut tightened = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        // Not following links: a link's target is not ours to change.
        let meta = std::fs::symlink_metadata(&path)?;
        let wanted = if meta.is_dir() {
            0o700
        } else if meta.is_file() {
            0o600
        } else {
            continue;
        };
        if meta.permissions().mode() & 0o777 != wanted {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wanted))?;
            tightened += usize::from(meta.is_dir());
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(tightened)
}

/// Elsewhere the platform's own access control applies; only creates `dir`.
#[cfg(not(unix))]
pub(crate) fn make_private(dir: &Path) -> io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    Ok(0)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn loose_directories_and_files_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("sessions");
        std::fs::create_dir_all(dir.join("blobs")).unwrap();
        std::fs::write(dir.join("db"), b"x").unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join("db"), std::fs::Permissions::from_mode(0o644)).unwrap();

        assert_eq!(make_private(&dir).unwrap(), 2, "two loose directories");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("blobs")), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o600);
        assert_eq!(make_private(&dir).unwrap(), 0, "nothing left to tighten");
        std::fs::set_permissions(dir.join("db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            make_private(&dir).unwrap(),
            0,
            "a file in a private directory exposed nothing"
        );
        assert_eq!(mode(&dir.join("db")), 0o600, "but it is tightened too");

        let fresh = root.path().join("new/sessions");
        make_private(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
    }
}
