//! `baton ctl`: the operator's commands, as op-conductor's conductor-ops gives
//! them, over the admin API (`conductor_*`, bearer token from a file or
//! `BATON_ADMIN_TOKEN`). Any reachable member will do: changes go to the leader.
//!
//! ```text
//!  baton ctl status | transfer-leader [--to ID] [--force] | pause | resume
//!            add-member --id N --addr /ip4/…/p2p/PEER --rpc-url URL [--voter]
//!            promote --id N | remove-member --id N
//! ```

use std::{path::PathBuf, time::Duration};

use baton_consensus::{MemberInfo, NodeStatus, Role, Suffrage};
use baton_primitives::NodeId;
use clap::{Args, Subcommand};
use eyre::{WrapErr, bail, eyre};
use jsonrpsee::{
    core::client::ClientT,
    http_client::{HeaderMap, HttpClient, HttpClientBuilder},
    rpc_params,
};

use crate::{client, status};

const PATIENCE: Duration = Duration::from_secs(5);
/// How long adding a member may take: the call returns once it has caught up,
/// which on a long chain means receiving a snapshot of all of it.
pub(crate) const CATCH_UP_PATIENCE: Duration = Duration::from_secs(3_600);

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// JSON-RPC URL of any member (repeat for fallbacks).
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub rpc: Vec<String>,
    /// File holding the admin token (`--admin-token` of the nodes).
    #[arg(long, env = "BATON_ADMIN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// The cluster as a table.
    Status,
    /// Hand leadership to member `--to` (default: the next ready member).
    TransferLeader {
        #[arg(long)]
        to: Option<NodeId>,
        /// Hand over even to a member that is not ready to lead.
        #[arg(long)]
        force: bool,
    },
    /// Stop rotation, step-down and the not-ready hand-over (every member, or `--node`).
    Pause {
        #[arg(long)]
        node: Option<NodeId>,
    },
    /// Undo `pause` (every member, or `--node`).
    Resume {
        #[arg(long)]
        node: Option<NodeId>,
    },
    /// Add a member: a non-voter that catches up (a voter with `--voter`).
    AddMember {
        #[arg(long)]
        id: NodeId,
        /// Its p2p address, ending in /p2p/<peer id> (`baton key` prints the id).
        #[arg(long)]
        addr: String,
        #[arg(long)]
        rpc_url: String,
        #[arg(long)]
        voter: bool,
    },
    /// Make a non-voter a voter.
    Promote {
        #[arg(long)]
        id: NodeId,
    },
    /// Remove a member.
    RemoveMember {
        #[arg(long)]
        id: NodeId,
    },
}

/// The admin token: from `--token-file`, else `BATON_ADMIN_TOKEN`.
fn token(args: &CtlArgs) -> eyre::Result<String> {
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path)
            .wrap_err_with(|| format!("cannot read the admin token file {}", path.display()))?;
        return Ok(token.trim().to_string());
    }
    std::env::var("BATON_ADMIN_TOKEN").map_err(|_| {
        eyre!("this command needs the admin token: --token-file FILE or BATON_ADMIN_TOKEN")
    })
}

/// A client of `url`'s admin methods, waiting at most `patience` for an answer.
pub(crate) fn admin(url: &str, token: &str, patience: Duration) -> eyre::Result<HttpClient> {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse()?);
    Ok(HttpClientBuilder::default()
        .set_headers(headers)
        .request_timeout(patience)
        .build(url)?)
}

/// The members, from the first of `urls` that answers.
async fn members(urls: &[String]) -> eyre::Result<Vec<MemberInfo>> {
    let mut last = None;
    for url in urls {
        match client::members(url, PATIENCE).await {
            Ok(members) => return Ok(members),
            Err(e) => last = Some(e.wrap_err(format!("{url} does not answer"))),
        }
    }
    Err(last.unwrap_or_else(|| eyre!("give --rpc URL")))
}

/// Every member with its own status (`None`: it does not answer).
async fn statuses(urls: &[String]) -> eyre::Result<Vec<(MemberInfo, Option<NodeStatus>)>> {
    let members = members(urls).await?;
    let asked = members
        .iter()
        .map(|m| async { client::node_status(&m.rpc_url, PATIENCE).await.ok() });
    let statuses = futures::future::join_all(asked).await;
    Ok(members.into_iter().zip(statuses).collect())
}

/// The leader's RPC URL.
fn leader_url(cluster: &[(MemberInfo, Option<NodeStatus>)]) -> eyre::Result<String> {
    cluster
        .iter()
        .find(|(_, s)| s.as_ref().is_some_and(|s| s.role == Role::Leader))
        .map(|(m, _)| m.rpc_url.clone())
        .ok_or_else(|| eyre!("no member leads now (an election?); retry"))
}

pub async fn run(args: CtlArgs) -> eyre::Result<()> {
    if let CtlCommand::Status = args.command {
        let url = args.rpc.first().cloned().unwrap_or_default();
        return status::run(status::StatusArgs {
            rpc: url,
            this_node: false,
        })
        .await;
    }
    let token = token(&args)?;
    let cluster = statuses(&args.rpc).await?;
    match args.command {
        CtlCommand::Status => unreachable!("answered above"),
        CtlCommand::TransferLeader { to, force } => {
            let leader = leader_url(&cluster)?;
            match to {
                Some(to) => {
                    let (member, status) = cluster
                        .iter()
                        .find(|(m, _)| m.id == to)
                        .ok_or_else(|| eyre!("node {to} is not a member"))?;
                    let ready = status.as_ref().is_some_and(|s| s.readiness.is_ready());
                    if !ready && !force {
                        bail!(
                            "node {to} is not ready to lead ({}); --force hands over anyway",
                            status
                                .as_ref()
                                .map_or("unreachable".to_string(), |s| s.readiness.to_string())
                        );
                    }
                    admin(&leader, &token, PATIENCE)?
                        .request::<(), _>(
                            "conductor_transferLeaderToServer",
                            rpc_params![to.to_string(), member.addr.clone()],
                        )
                        .await
                        .wrap_err_with(|| format!("handing leadership to node {to}"))?;
                    println!("leadership handed to node {to}");
                }
                None => {
                    admin(&leader, &token, PATIENCE)?
                        .request::<(), _>("conductor_transferLeader", rpc_params![])
                        .await?;
                    println!("leadership handed to the next ready member");
                }
            }
        }
        CtlCommand::Pause { node } | CtlCommand::Resume { node } => {
            let method = match args.command {
                CtlCommand::Pause { .. } => "conductor_pause",
                _ => "conductor_resume",
            };
            let targets: Vec<&MemberInfo> = cluster
                .iter()
                .map(|(m, _)| m)
                .filter(|m| node.is_none_or(|id| m.id == id))
                .collect();
            if targets.is_empty() {
                bail!("node {} is not a member", node.unwrap_or_default());
            }
            for member in targets {
                admin(&member.rpc_url, &token, PATIENCE)?
                    .request::<(), _>(method, rpc_params![])
                    .await
                    .wrap_err_with(|| format!("{method} on node {}", member.id))?;
                println!("node {}: {method}", member.id);
            }
        }
        CtlCommand::AddMember {
            id,
            addr,
            rpc_url,
            voter,
        } => {
            let method = if voter {
                "conductor_addServerAsVoter"
            } else {
                "conductor_addServerAsNonvoter"
            };
            admin(&leader_url(&cluster)?, &token, CATCH_UP_PATIENCE)?
                .request::<(), _>(method, rpc_params![id.to_string(), addr, 0, rpc_url])
                .await?;
            println!(
                "node {id} added as a {}",
                if voter { "voter" } else { "non-voter" }
            );
        }
        CtlCommand::Promote { id } => {
            let (member, _) = cluster
                .iter()
                .find(|(m, _)| m.id == id)
                .ok_or_else(|| eyre!("node {id} is not a member"))?;
            if member.suffrage == Suffrage::Voter {
                bail!("node {id} already votes");
            }
            admin(&leader_url(&cluster)?, &token, CATCH_UP_PATIENCE)?
                .request::<(), _>(
                    "conductor_addServerAsVoter",
                    rpc_params![
                        id.to_string(),
                        format!("{}/p2p/{}", member.addr, member.peer_id),
                        0,
                        member.rpc_url.clone()
                    ],
                )
                .await?;
            println!("node {id} promoted to voter");
        }
        CtlCommand::RemoveMember { id } => {
            admin(&leader_url(&cluster)?, &token, PATIENCE)?
                .request::<(), _>("conductor_removeServer", rpc_params![id.to_string(), 0])
                .await?;
            println!("node {id} removed");
        }
    }
    Ok(())
}
