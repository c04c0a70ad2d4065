//! `baton`: parse, set up logging, dispatch; errors end the process with one clear line.

mod cli;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = cli::run(cli).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
