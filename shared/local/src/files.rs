//! Files of the local runtime that hold personal data (the state, the sandbox's directory):
//! created readable and writable by their owner alone, whatever the process umask.
//!
//! SQLite creates a database file with the umask's mode (0644 under the usual 022), so the
//! file is created here first; SQLite gives its `-wal` and `-shm` files the database file's
//! mode. Existing files and folders keep their mode (an operator may have chosen it); a file
//! others can read is reported at warn.

use std::io;
use std::path::Path;

/// Creates `dir` and its missing parents as 0700 (owner only). Existing folders are left as
/// they are.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates `path` empty as 0600 (owner only) unless it exists; an existing file is left as it
/// is (an empty file is a new database to SQLite).
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

/// Warns when other users can read or write `path` (a file from before hrsync made them
/// private, or one an operator opened up).
pub fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path) {
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format_args!("{mode:o}"),
                    "other users can read this file, which holds personal data; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
