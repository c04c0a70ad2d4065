//! `baton`: parse, set up logging, dispatch; errors end the process with one clear line.

mod cli;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than the system's malloc: the late cost per transaction of a
/// long run is lower, and grows less (docs/state.md has the measurements).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match cli::run(cli).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("error: {error:#}");
            1
        }
    };
    exit(code);
}

/// Ends the process without running C++ static destructors: RocksDB's background
/// threads may still hold its static mutexes, and destroying them under those
/// threads aborts the process ("pthread lock: Invalid argument") instead of
/// exiting with `code`. Everything a node wrote is already in the OS (its WAL
/// writes are done, the Raft log's fsynced), so nothing is lost by not unwinding.
fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit(2) ends the process at once; no Rust state is observed after it.
    unsafe { libc::_exit(code) }
}
