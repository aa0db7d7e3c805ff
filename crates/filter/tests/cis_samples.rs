//! The CIS pack over the real sample corpus: each control fires exactly on the records an
//! independent predicate (written here over `serde_json::Value`, from the control's wording in
//! `cis-metric-filters.md`) picks out, and stays silent on every other record. The pairs are
//! also kept in `testdata/cis-fixtures.tsv` (file, line, control, eventName), so a change in what
//! fires shows in review (`UPDATE_GOLDEN=1` rewrites it).

use cairn_filter::{cis, parse, MatchSet};
use serde_json::Value;

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn name_in(v: &Value, names: &[&str]) -> bool {
    s(v, &["eventName"]).is_some_and(|n| names.contains(&n))
}

/// The control's meaning, independently.
fn expected(id: &str, v: &Value) -> bool {
    match id {
        "CloudWatch.1" => {
            s(v, &["userIdentity", "type"]) == Some("Root")
                && v["userIdentity"].get("invokedBy").is_none()
                && matches!(v.get("eventType"), Some(Value::String(t)) if t != "AwsServiceEvent")
        }
        "CloudWatch.2" => s(v, &["errorCode"])
            .is_some_and(|c| c.ends_with("UnauthorizedOperation") || c.starts_with("AccessDenied")),
        "CloudWatch.3" => {
            s(v, &["eventName"]) == Some("ConsoleLogin")
                && matches!(v.pointer("/additionalEventData/MFAUsed"), Some(Value::String(m)) if m != "Yes")
                && s(v, &["userIdentity", "type"]) == Some("IAMUser")
                && s(v, &["responseElements", "ConsoleLogin"]) == Some("Success")
        }
        "CloudWatch.4" => name_in(
            v,
            &[
                "DeleteGroupPolicy",
                "DeleteRolePolicy",
                "DeleteUserPolicy",
                "PutGroupPolicy",
                "PutRolePolicy",
                "PutUserPolicy",
                "CreatePolicy",
                "DeletePolicy",
                "CreatePolicyVersion",
                "DeletePolicyVersion",
                "AttachRolePolicy",
                "DetachRolePolicy",
                "AttachUserPolicy",
                "DetachUserPolicy",
                "AttachGroupPolicy",
                "DetachGroupPolicy",
            ],
        ),
        "CloudWatch.5" => name_in(
            v,
            &[
                "CreateTrail",
                "UpdateTrail",
                "DeleteTrail",
                "StartLogging",
                "StopLogging",
            ],
        ),
        "CloudWatch.6" => {
            s(v, &["eventName"]) == Some("ConsoleLogin")
                && s(v, &["errorMessage"]) == Some("Failed authentication")
        }
        "CloudWatch.7" => {
            s(v, &["eventSource"]) == Some("kms.amazonaws.com")
                && name_in(v, &["DisableKey", "ScheduleKeyDeletion"])
        }
        "CloudWatch.8" => {
            s(v, &["eventSource"]) == Some("s3.amazonaws.com")
                && name_in(
                    v,
                    &[
                        "PutBucketAcl",
                        "PutBucketPolicy",
                        "PutBucketCors",
                        "PutBucketLifecycle",
                        "PutBucketReplication",
                        "DeleteBucketPolicy",
                        "DeleteBucketCors",
                        "DeleteBucketLifecycle",
                        "DeleteBucketReplication",
                    ],
                )
        }
        "CloudWatch.9" => {
            s(v, &["eventSource"]) == Some("config.amazonaws.com")
                && name_in(
                    v,
                    &[
                        "StopConfigurationRecorder",
                        "DeleteDeliveryChannel",
                        "PutDeliveryChannel",
                        "PutConfigurationRecorder",
                    ],
                )
        }
        "CloudWatch.10" => name_in(
            v,
            &[
                "AuthorizeSecurityGroupIngress",
                "AuthorizeSecurityGroupEgress",
                "RevokeSecurityGroupIngress",
                "RevokeSecurityGroupEgress",
                "CreateSecurityGroup",
                "DeleteSecurityGroup",
            ],
        ),
        "CloudWatch.11" => name_in(
            v,
            &[
                "CreateNetworkAcl",
                "CreateNetworkAclEntry",
                "DeleteNetworkAcl",
                "DeleteNetworkAclEntry",
                "ReplaceNetworkAclEntry",
                "ReplaceNetworkAclAssociation",
            ],
        ),
        "CloudWatch.12" => name_in(
            v,
            &[
                "CreateCustomerGateway",
                "DeleteCustomerGateway",
                "AttachInternetGateway",
                "CreateInternetGateway",
                "DeleteInternetGateway",
                "DetachInternetGateway",
            ],
        ),
        "CloudWatch.13" => name_in(
            v,
            &[
                "CreateRoute",
                "CreateRouteTable",
                "ReplaceRoute",
                "ReplaceRouteTableAssociation",
                "DeleteRouteTable",
                "DeleteRoute",
                "DisassociateRouteTable",
            ],
        ),
        "CloudWatch.14" => name_in(
            v,
            &[
                "CreateVpc",
                "DeleteVpc",
                "ModifyVpcAttribute",
                "AcceptVpcPeeringConnection",
                "CreateVpcPeeringConnection",
                "DeleteVpcPeeringConnection",
                "RejectVpcPeeringConnection",
                "AttachClassicLinkVpc",
                "DetachClassicLinkVpc",
                "DisableVpcClassicLink",
                "EnableVpcClassicLink",
            ],
        ),
        "CIS-4.15" => {
            s(v, &["eventSource"]) == Some("organizations.amazonaws.com")
                && name_in(
                    v,
                    &[
                        "AcceptHandshake",
                        "AttachPolicy",
                        "CreateAccount",
                        "CreateOrganizationalUnit",
                        "CreatePolicy",
                        "DeclineHandshake",
                        "DeleteOrganization",
                        "DeleteOrganizationalUnit",
                        "DeletePolicy",
                        "DetachPolicy",
                        "DisablePolicyType",
                        "EnablePolicyType",
                        "InviteAccountToOrganization",
                        "LeaveOrganization",
                        "MoveAccount",
                        "RemoveAccountFromOrganization",
                        "UpdatePolicy",
                        "UpdateOrganizationalUnit",
                    ],
                )
        }
        other => panic!("no predicate for {other}"),
    }
}

#[test]
fn the_cis_pack_fires_exactly_on_the_records_it_describes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("testdata/cloudtrail-samples/_normalized");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("samples")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            name.ends_with(".ndjson") && !name.contains("digests")
        })
        .collect();
    files.sort();
    let set = MatchSet::new(
        cis::CONTROLS
            .iter()
            .map(|c| parse(c.pattern).expect("valid"))
            .collect(),
    );
    let mut golden = String::new();
    let mut records = 0;
    let mut fired = vec![0usize; cis::CONTROLS.len()];
    for file in &files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for (i, line) in std::fs::read_to_string(file)
            .expect("read")
            .lines()
            .enumerate()
        {
            if line.trim().is_empty() {
                continue;
            }
            records += 1;
            let value: Value = serde_json::from_str(line).expect("record");
            let matches = set.matches(line);
            for (c, control) in cis::CONTROLS.iter().enumerate() {
                assert_eq!(
                    matches[c],
                    expected(control.id, &value),
                    "{name}:{}: {} ({})",
                    i + 1,
                    control.id,
                    control.title
                );
                if matches[c] {
                    fired[c] += 1;
                    golden.push_str(&format!(
                        "{name}\t{}\t{}\t{}\n",
                        i + 1,
                        control.id,
                        value["eventName"].as_str().unwrap_or("")
                    ));
                }
            }
        }
    }
    assert!(records > 500, "{records} sample records");
    for (c, control) in cis::CONTROLS.iter().enumerate() {
        assert!(fired[c] > 0, "{} fires on no sample record", control.id);
    }
    let path = root.join("testdata/cis-fixtures.tsv");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &golden).expect("write golden");
    }
    let kept = std::fs::read_to_string(&path).expect("testdata/cis-fixtures.tsv (UPDATE_GOLDEN=1)");
    assert_eq!(kept, golden, "the (record, control) pairs changed");
}
