//! The JSON-RPC endpoint: where it listens, the admin token that guards the
//! `conductor_` methods that change anything, and the limits that keep any RPC
//! load from reaching consensus (connections, subscriptions, call execution).

use std::{net::SocketAddr, path::Path, path::PathBuf, time::Duration};

use baton_rpc::{ConnectionLimits, ExecLimits, QueryLimits};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// JSON-RPC settings as given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcArgs {
    /// JSON-RPC listen address (HTTP and WebSocket).
    #[arg(long, env = "BATON_RPC_ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    /// File holding the bearer token that conductor_ methods which change anything
    /// require (they are refused without it).
    #[arg(long, env = "BATON_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Most gas one eth_call or gas estimate may use [default: 50000000].
    #[arg(long)]
    pub rpc_gas_cap: Option<u64>,
    /// Wall-clock limit of one eth_call, estimate, log query or fee history, in ms,
    /// waiting included [default: 5000].
    #[arg(long)]
    pub rpc_evm_timeout_ms: Option<u64>,
    /// Threads that execute calls, estimates, log queries and fee history, at low
    /// CPU priority [default: 2].
    #[arg(long)]
    pub rpc_exec_threads: Option<usize>,
    /// Calls that may wait for an execution thread; more are refused as busy
    /// [default: 64].
    #[arg(long)]
    pub rpc_exec_queue: Option<usize>,
    /// Calls one connection may have executing or waiting at once [default: 4].
    #[arg(long)]
    pub rpc_calls_per_connection: Option<usize>,
    /// Most open connections [default: 1024].
    #[arg(long)]
    pub rpc_max_connections: Option<u32>,
    /// Most open connections from one source address; more are answered 429
    /// [default: 128].
    #[arg(long)]
    pub rpc_max_connections_per_ip: Option<u32>,
    /// Most subscriptions one WebSocket connection may hold [default: 64].
    #[arg(long)]
    pub rpc_subscriptions_per_connection: Option<u32>,
    /// Most bytes of subscription notifications waiting to be sent on one WebSocket
    /// connection; a subscription whose notification finds no room for 5 s ends
    /// with an error notification [default: 16777216].
    #[arg(long)]
    pub rpc_subscription_buffer_bytes: Option<usize>,
    /// Largest request body or WebSocket message read, in bytes [default: 5242880].
    #[arg(long)]
    pub rpc_max_request_bytes: Option<u32>,
    /// Largest answer sent (a batch's whole), in bytes [default: 10485760].
    #[arg(long)]
    pub rpc_max_response_bytes: Option<u32>,
    /// Most calls in one JSON-RPC batch [default: 100].
    #[arg(long)]
    pub rpc_max_batch_len: Option<u32>,
    /// Most blocks one eth_getLogs scans, and one filter poll reports [default: 10000].
    #[arg(long)]
    pub rpc_max_blocks_per_filter: Option<u64>,
    /// Most logs one eth_getLogs or filter poll returns [default: 10000].
    #[arg(long)]
    pub rpc_max_logs_per_response: Option<usize>,
    /// Most polling filters installed at once [default: 10000].
    #[arg(long)]
    pub rpc_max_filters: Option<usize>,
    /// Most bytes (estimated: 256 per filter, 64 per address or topic) that
    /// installed filters and log subscriptions hold together [default: 67108864].
    #[arg(long)]
    pub rpc_max_filter_bytes: Option<usize>,
    /// Least gap between two preconfirmation frames to one subscriber, in ms;
    /// batches applied faster are merged into one frame [default: 50].
    #[arg(long)]
    pub flashblock_interval_ms: Option<u64>,
}

/// JSON-RPC settings, checked.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    pub addr: SocketAddr,
    /// The admin bearer token; admin methods are off without one.
    pub admin_token: Option<String>,
    pub exec: ExecLimits,
    pub connections: ConnectionLimits,
    pub queries: QueryLimits,
    pub flashblock_interval: Duration,
}

impl RpcArgs {
    pub fn resolve(&self) -> Result<RpcConfig, ConfigError> {
        let defaults = ExecLimits::default();
        let exec = ExecLimits {
            threads: self.rpc_exec_threads.unwrap_or(defaults.threads),
            queue: self.rpc_exec_queue.unwrap_or(defaults.queue),
            per_connection: self
                .rpc_calls_per_connection
                .unwrap_or(defaults.per_connection),
            timeout: self
                .rpc_evm_timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
            gas_cap: self.rpc_gas_cap.unwrap_or(defaults.gas_cap),
        };
        let connections = ConnectionLimits {
            max_connections: self.rpc_max_connections.unwrap_or(1_024),
            per_ip: self.rpc_max_connections_per_ip.unwrap_or(128),
            subscriptions_per_connection: self.rpc_subscriptions_per_connection.unwrap_or(64),
            subscription_buffer_bytes: self
                .rpc_subscription_buffer_bytes
                .unwrap_or(baton_rpc::DEFAULT_SUBSCRIPTION_BUFFER_BYTES),
            max_request_bytes: self
                .rpc_max_request_bytes
                .unwrap_or(baton_rpc::MAX_REQUEST_BYTES),
            max_response_bytes: self
                .rpc_max_response_bytes
                .unwrap_or(baton_rpc::MAX_RESPONSE_BYTES),
            max_batch_len: self.rpc_max_batch_len.unwrap_or(baton_rpc::MAX_BATCH_LEN),
        };
        let default_queries = QueryLimits::default();
        let queries = QueryLimits {
            max_blocks_per_filter: self
                .rpc_max_blocks_per_filter
                .unwrap_or(default_queries.max_blocks_per_filter),
            max_logs_per_response: self
                .rpc_max_logs_per_response
                .unwrap_or(default_queries.max_logs_per_response),
            max_filters: self.rpc_max_filters.unwrap_or(default_queries.max_filters),
            max_filter_bytes: self
                .rpc_max_filter_bytes
                .unwrap_or(default_queries.max_filter_bytes),
        };
        let positive = [
            ("rpc_exec_threads", exec.threads as u64),
            ("rpc_calls_per_connection", exec.per_connection as u64),
            ("rpc_evm_timeout_ms", exec.timeout.as_millis() as u64),
            ("rpc_gas_cap", exec.gas_cap),
            (
                "rpc_max_connections",
                u64::from(connections.max_connections),
            ),
            ("rpc_max_connections_per_ip", u64::from(connections.per_ip)),
            (
                "rpc_subscription_buffer_bytes",
                connections.subscription_buffer_bytes as u64,
            ),
            (
                "rpc_max_request_bytes",
                u64::from(connections.max_request_bytes),
            ),
            (
                "rpc_max_response_bytes",
                u64::from(connections.max_response_bytes),
            ),
            ("rpc_max_batch_len", u64::from(connections.max_batch_len)),
            ("rpc_max_blocks_per_filter", queries.max_blocks_per_filter),
            (
                "rpc_max_logs_per_response",
                queries.max_logs_per_response as u64,
            ),
            ("rpc_max_filters", queries.max_filters as u64),
            ("rpc_max_filter_bytes", queries.max_filter_bytes as u64),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Invalid(format!("{key} must be at least 1")));
        }
        if exec.threads > 256 {
            return Err(ConfigError::Invalid(format!(
                "rpc_exec_threads {} is more than 256",
                exec.threads
            )));
        }
        Ok(RpcConfig {
            addr: self.rpc_addr.ok_or(ConfigError::Missing("rpc_addr"))?,
            admin_token: self
                .admin_token_file
                .as_deref()
                .map(read_token)
                .transpose()?,
            exec,
            connections,
            queries,
            flashblock_interval: self.flashblock_interval_ms.map_or(
                baton_rpc::DEFAULT_FLASHBLOCK_INTERVAL,
                Duration::from_millis,
            ),
        })
    }
}

/// The admin token in `path`: its first line, which must hold at least 16
/// characters (a guessable token would open the cluster to anyone who can reach RPC).
fn read_token(path: &Path) -> Result<String, ConfigError> {
    let bad = |why: String| ConfigError::AdminToken {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 {
        return Err(bad(format!(
            "the token is {} characters; use at least 16",
            token.len()
        )));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_token_file_must_hold_a_long_enough_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let with_token = |text: &str| {
            let path = dir.path().join("token");
            std::fs::write(&path, text).expect("write");
            RpcArgs {
                rpc_addr: Some("127.0.0.1:8545".parse().expect("addr")),
                admin_token_file: Some(path),
                ..Default::default()
            }
            .resolve()
        };
        let config = with_token("0123456789abcdef-secret\n").expect("valid");
        assert_eq!(
            config.admin_token.as_deref(),
            Some("0123456789abcdef-secret")
        );
        let short = with_token("hunter2").expect_err("too short").to_string();
        assert!(short.contains("at least 16"), "{short}");
        let missing = RpcArgs {
            rpc_addr: Some("127.0.0.1:8545".parse().expect("addr")),
            admin_token_file: Some(dir.path().join("absent")),
            ..Default::default()
        }
        .resolve()
        .expect_err("missing")
        .to_string();
        assert!(
            missing.contains("cannot read the admin token file"),
            "{missing}"
        );
    }

    #[test]
    fn rpc_limits_have_defaults_and_zero_is_refused() {
        let args = RpcArgs {
            rpc_addr: Some("127.0.0.1:8545".parse().expect("addr")),
            ..Default::default()
        };
        let config = args.resolve().expect("defaults");
        assert_eq!(config.exec.timeout, Duration::from_secs(5));
        assert_eq!(config.exec.gas_cap, 50_000_000);
        let zero = RpcArgs {
            rpc_calls_per_connection: Some(0),
            ..args
        }
        .resolve()
        .expect_err("zero")
        .to_string();
        assert_eq!(zero, "rpc_calls_per_connection must be at least 1");
    }
}
