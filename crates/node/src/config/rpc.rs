//! The JSON-RPC endpoint: where it listens, and the admin token that guards the
//! `conductor_` methods that change anything.

use std::{net::SocketAddr, path::Path, path::PathBuf};

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
}

/// JSON-RPC settings, checked.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    pub addr: SocketAddr,
    /// The admin bearer token; admin methods are off without one.
    pub admin_token: Option<String>,
}

impl RpcArgs {
    pub fn resolve(&self) -> Result<RpcConfig, ConfigError> {
        Ok(RpcConfig {
            addr: self.rpc_addr.ok_or(ConfigError::Missing("rpc_addr"))?,
            admin_token: self
                .admin_token_file
                .as_deref()
                .map(read_token)
                .transpose()?,
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
        }
        .resolve()
        .expect_err("missing")
        .to_string();
        assert!(
            missing.contains("cannot read the admin token file"),
            "{missing}"
        );
    }
}
