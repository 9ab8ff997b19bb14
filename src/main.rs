use std::process::ExitCode;

use digestif::cli::{Cli, EXIT_ERROR};

fn main() -> ExitCode {
    return_large_blocks_to_the_system();
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("DIGESTIF_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    // Human lines by default; one JSON object per line (with the span fields: delivery,
    // installation, repo, job id) for log collectors.
    match std::env::var("DIGESTIF_LOG_FORMAT").as_deref() {
        Ok("json") => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .init(),
        other => {
            tracing_subscriber::fmt()
                .with_env_filter(filter())
                .with_writer(std::io::stderr)
                .init();
            if let Ok(v) = other
                && !matches!(v, "" | "text" | "human")
            {
                tracing::warn!(
                    value = v,
                    "DIGESTIF_LOG_FORMAT is text (default) or json; using text"
                );
            }
        }
    }
    let cli = Cli::from_command_line();
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("digestif: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// glibc serves an allocation of 128 KiB or more with its own mapping, returned to the
/// system when freed, but raises that threshold (up to 32 MiB) each time such a block is
/// freed: after a burst of large webhook bodies, later ones come from the heap and their
/// memory stays with the process. Setting the threshold fixes it at 128 KiB.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
