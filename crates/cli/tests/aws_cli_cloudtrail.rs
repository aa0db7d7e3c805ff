//! The real AWS CLI (`aws cloudtrail ...`, awscli from PyPI) against Cairn with
//! `--endpoint-url`: every CloudTrail operation Cairn serves, pagination of lookup-events, and
//! the errors a wrong secret and a missing permission give.

mod support;

use serde_json::{json, Value};
use support::{python_with, Moto, TestServer};

struct Aws {
    exe: std::path::PathBuf,
    endpoint: String,
    id: String,
    secret: String,
}

impl Aws {
    fn run(&self, args: &[&str]) -> (i32, Value, String) {
        let output = std::process::Command::new(&self.exe)
            .arg("cloudtrail")
            .args(args)
            .args([
                "--endpoint-url",
                &self.endpoint,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .env("AWS_ACCESS_KEY_ID", &self.id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run aws");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (
            output.status.code().unwrap_or(-1),
            serde_json::from_str(&stdout).unwrap_or(Value::Null),
            format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        )
    }

    fn ok(&self, args: &[&str]) -> Value {
        let (code, value, text) = self.run(args);
        assert_eq!(code, 0, "aws cloudtrail {args:?}: {text}");
        value
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_drives_every_cloudtrail_operation() {
    let exe = python_with(&["awscli", "moto[server]"])
        .parent()
        .expect("bin")
        .join("aws");
    let moto = Moto::start();
    moto.create_bucket("cli-bucket").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = moto.s3_config();
    let server = TestServer::start(dir.path(), |c| {
        c.s3 = Some(s3);
        c.account_id = Some("111122223333".into());
    })
    .await;
    // A writer may ingest only.
    let json_ct = "application/json";
    server
        .post(
            "/v1/iam/users",
            json_ct,
            json!({"UserName": "feeder"}).to_string(),
        )
        .await;
    server
        .post(
            "/v1/iam/users/feeder/attached-policies",
            json_ct,
            json!({"PolicyArn": "CairnWriter"}).to_string(),
        )
        .await;
    let (_, key) = server
        .post("/v1/iam/users/feeder/access-keys", json_ct, "")
        .await;
    let aws = Aws {
        exe,
        endpoint: server.base.clone(),
        id: server.creds.id.clone(),
        secret: server.creds.secret.clone(),
    };
    let feeder = Aws {
        id: key["AccessKey"]["AccessKeyId"]
            .as_str()
            .expect("id")
            .to_owned(),
        secret: key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .expect("secret")
            .to_owned(),
        ..Aws {
            exe: aws.exe.clone(),
            endpoint: aws.endpoint.clone(),
            id: String::new(),
            secret: String::new(),
        }
    };

    let result = tokio::task::spawn_blocking(move || {
        let created = aws.ok(&[
            "create-trail",
            "--name",
            "cli-trail",
            "--s3-bucket-name",
            "cli-bucket",
            "--is-multi-region-trail",
            "--enable-log-file-validation",
        ]);
        assert_eq!(created["Name"], "cli-trail");
        assert_eq!(created["LogFileValidationEnabled"], true);
        let updated = aws.ok(&["update-trail", "--name", "cli-trail", "--s3-key-prefix", "cli"]);
        assert_eq!(updated["S3KeyPrefix"], "cli");
        let described = aws.ok(&["describe-trails"]);
        assert_eq!(described["trailList"][0]["Name"], "cli-trail");
        let got = aws.ok(&["get-trail", "--name", "cli-trail"]);
        assert_eq!(got["Trail"]["IsMultiRegionTrail"], true);
        aws.ok(&["start-logging", "--name", "cli-trail"]);
        let status = aws.ok(&["get-trail-status", "--name", "cli-trail"]);
        assert_eq!(status["IsLogging"], true);
        let listed = aws.ok(&["list-trails"]);
        assert_eq!(listed["Trails"][0]["HomeRegion"], "us-east-1");
        let selectors = aws.ok(&[
            "put-event-selectors",
            "--trail-name",
            "cli-trail",
            "--advanced-event-selectors",
            r#"[{"Name":"mgmt","FieldSelectors":[{"Field":"eventCategory","Equals":["Management"]}]}]"#,
        ]);
        assert_eq!(selectors["AdvancedEventSelectors"][0]["Name"], "mgmt");
        let got = aws.ok(&["get-event-selectors", "--trail-name", "cli-trail"]);
        assert_eq!(got["AdvancedEventSelectors"], selectors["AdvancedEventSelectors"]);
        aws.ok(&["stop-logging", "--name", "cli-trail"]);
        // Paginated: the CLI follows NextToken with a page size of 1.
        let events = aws.ok(&[
            "lookup-events",
            "--lookup-attributes",
            "AttributeKey=EventSource,AttributeValue=cloudtrail.amazonaws.com",
            "--page-size",
            "1",
            "--max-items",
            "4",
        ]);
        assert_eq!(events["Events"].as_array().map(Vec::len), Some(4), "{events}");
        assert!(events["NextToken"].is_string(), "more remain: {events}");
        let keys = aws.ok(&["list-public-keys"]);
        assert!(keys["PublicKeyList"][0]["Fingerprint"].is_string(), "{keys}");
        // Errors.
        let wrong = Aws {
            secret: "x".repeat(40),
            exe: aws.exe.clone(),
            endpoint: aws.endpoint.clone(),
            id: aws.id.clone(),
        };
        let (code, _, text) = wrong.run(&["describe-trails"]);
        assert_ne!(code, 0);
        assert!(text.contains("InvalidSignatureException"), "{text}");
        let (code, _, text) = feeder.run(&["describe-trails"]);
        assert_ne!(code, 0);
        assert!(text.contains("AccessDeniedException"), "{text}");
        let (code, _, text) = aws.run(&["get-trail", "--name", "missing"]);
        assert_ne!(code, 0);
        assert!(text.contains("TrailNotFoundException"), "{text}");
        aws.ok(&["delete-trail", "--name", "cli-trail"]);
        let listed = aws.ok(&["list-trails"]);
        assert_eq!(listed["Trails"], json!([]));
    })
    .await;
    result.expect("aws cli session");
    server.stop().await;
}
