//! Standard output that a closed pipe ends quietly, as Unix tools do: after
//! `hrsync audit ... | head -1` has read its line, what follows is dropped (Rust's `println!`
//! panics there), and the command finishes with its own exit status.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Standard output was closed (or failed): nothing more is written to it.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to standard output, unless it was closed.
pub fn write(text: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!(%error, "cannot write to standard output; the rest of the output is dropped");
        }
    }
}

/// `println!` onto [`write`].
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` onto [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};
