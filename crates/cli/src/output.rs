//! Writing to stdout and stderr without panicking (`println!` panics when the reader of a
//! pipe has gone away, as with `kernelyard list | head`).

use std::io::{self, Write};

use serde::Serialize;

/// Writes `text` to stdout. A closed pipe is an error that `main` ends quietly on.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes `value` to stdout as pretty JSON followed by a newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print(&text)
}

/// Writes one line to stderr; a failure to write there cannot be reported anywhere, so it is
/// ignored.
pub fn error(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// True if `err` comes from writing to a pipe whose reader has gone away.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
