//! `cairn iam ...`: identities through the API (so every change is recorded in the trail).

use crate::client::{http, percent_encode};
use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct IamArgs {
    /// Server endpoint.
    #[arg(long, env = "CAIRN_ENDPOINT", default_value_t = crate::profile::endpoint(), global = true)]
    endpoint: String,
    /// Output format: json, table or text.
    #[arg(long, value_enum, default_value_t = crate::output::Output::Json, global = true)]
    output: crate::output::Output,
    #[command(subcommand)]
    command: IamCommand,
}

#[derive(Debug, Subcommand)]
enum IamCommand {
    /// Create a user (no permissions until a policy is attached).
    CreateUser {
        #[arg(long)]
        user_name: String,
    },
    /// List users.
    ListUsers,
    /// Create an access key; the secret is printed this once.
    CreateAccessKey {
        #[arg(long)]
        user_name: String,
    },
    /// List a user's access keys (no secrets).
    ListAccessKeys {
        #[arg(long)]
        user_name: String,
    },
    /// Delete an access key.
    DeleteAccessKey {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        access_key_id: String,
    },
    /// Attach a built-in policy: AdministratorAccess, CairnWriter, CairnReader, CairnAuditor.
    AttachPolicy {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        policy_arn: String,
    },
    /// Add or replace an inline policy (`--policy-document '{...}'` or `@file.json`).
    PutUserPolicy {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        policy_name: String,
        #[arg(long)]
        policy_document: String,
    },
    /// Delete a user (its access keys and policies must be gone first).
    DeleteUser {
        #[arg(long)]
        user_name: String,
    },
    /// Make an access key Active or Inactive (an inactive key signs nothing).
    UpdateAccessKey {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        access_key_id: String,
        #[arg(long, value_parser = ["Active", "Inactive"])]
        status: String,
    },
    /// List the built-in policies attached to a user.
    ListAttachedPolicies {
        #[arg(long)]
        user_name: String,
    },
    /// Detach a built-in policy from a user.
    DetachPolicy {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        policy_arn: String,
    },
    /// List a user's inline policies.
    ListUserPolicies {
        #[arg(long)]
        user_name: String,
    },
    /// Delete an inline policy.
    DeleteUserPolicy {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        policy_name: String,
    },
    /// Who the credentials in use belong to.
    Whoami,
}

/// `cairn iam ...`.
pub async fn run(args: IamArgs) -> anyhow::Result<()> {
    let base = args.endpoint.trim_end_matches('/').to_owned();
    let output = args.output;
    let client = http()?;
    let user_path = |user: &str| format!("{base}/v1/iam/users/{}", percent_encode(user));
    let request = match args.command {
        IamCommand::CreateUser { user_name } => client
            .post(format!("{base}/v1/iam/users"))
            .body(json!({ "UserName": user_name }).to_string()),
        IamCommand::ListUsers => client.get(format!("{base}/v1/iam/users")),
        IamCommand::CreateAccessKey { user_name } => {
            client.post(format!("{}/access-keys", user_path(&user_name)))
        }
        IamCommand::ListAccessKeys { user_name } => {
            client.get(format!("{}/access-keys", user_path(&user_name)))
        }
        IamCommand::DeleteAccessKey {
            user_name,
            access_key_id,
        } => client.delete(format!(
            "{}/access-keys/{}",
            user_path(&user_name),
            percent_encode(&access_key_id)
        )),
        IamCommand::AttachPolicy {
            user_name,
            policy_arn,
        } => client
            .post(format!("{}/attached-policies", user_path(&user_name)))
            .body(json!({ "PolicyArn": policy_arn }).to_string()),
        IamCommand::PutUserPolicy {
            user_name,
            policy_name,
            policy_document,
        } => {
            let document = match policy_document.strip_prefix('@') {
                Some(path) => {
                    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?
                }
                None => policy_document,
            };
            client
                .put(format!(
                    "{}/policies/{}",
                    user_path(&user_name),
                    percent_encode(&policy_name)
                ))
                .body(document)
        }
        IamCommand::DeleteUser { user_name } => client.delete(user_path(&user_name)),
        IamCommand::UpdateAccessKey {
            user_name,
            access_key_id,
            status,
        } => client
            .patch(format!(
                "{}/access-keys/{}",
                user_path(&user_name),
                percent_encode(&access_key_id)
            ))
            .body(json!({ "Status": status }).to_string()),
        IamCommand::ListAttachedPolicies { user_name } => {
            client.get(format!("{}/attached-policies", user_path(&user_name)))
        }
        IamCommand::DetachPolicy {
            user_name,
            policy_arn,
        } => client.delete(format!(
            "{}/attached-policies/{}",
            user_path(&user_name),
            percent_encode(&policy_arn)
        )),
        IamCommand::ListUserPolicies { user_name } => {
            client.get(format!("{}/policies", user_path(&user_name)))
        }
        IamCommand::DeleteUserPolicy {
            user_name,
            policy_name,
        } => client.delete(format!(
            "{}/policies/{}",
            user_path(&user_name),
            percent_encode(&policy_name)
        )),
        IamCommand::Whoami => client.get(format!("{base}/v1/iam/whoami")),
    };
    let body = crate::client::call(request, &base).await?;
    crate::output::print(&body, output)
}
