//! `baton`: parse, set up logging, run; errors end the process with one clear line.

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    let cli = baton_node::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = baton_node::cli::run(cli).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
