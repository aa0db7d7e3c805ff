//! Every record of the shared sample corpus goes through ingest and lookup: accepted ones come
//! back byte-identical (the producer's bytes, plus only the members Cairn appends); rejected
//! ones get a precise reason, listed in `testdata/corpus-rejections.txt` (regenerate with
//! `UPDATE_GOLDEN=1`).

mod support;

use support::{encode, is_sent_plus_appended, samples_dir, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_record_is_ingested_and_found_or_precisely_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The samples span 2014-2025: keep them all searchable.
    let server = TestServer::start(dir.path(), |c| c.history_retention_days = Some(36_500)).await;
    let normalized = samples_dir().join("_normalized");
    let mut files: Vec<_> = std::fs::read_dir(&normalized)
        .expect("corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "ndjson")
                && !p.to_string_lossy().ends_with(".digests.ndjson")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 6,
        "corpus files missing under {}",
        normalized.display()
    );

    let mut rejections = Vec::new();
    let (mut accepted, mut duplicates, mut found_in_history, mut not_in_history) = (0, 0, 0, 0);
    let mut accepted_records: Vec<(String, Vec<u8>)> = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read(file).expect("read corpus file");
        let lines: Vec<&[u8]> = text
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let (status, body) = server
            .post("/v1/events", "application/x-ndjson", text.clone())
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), lines.len(), "{name}: one result per record");
        server.wait_indexed().await;
        for result in results {
            let index = result["index"].as_u64().expect("index") as usize;
            let line = lines[index];
            match result["status"].as_str().expect("status") {
                "rejected" => {
                    let reason = result["reason"].as_str().expect("reason");
                    assert!(!reason.is_empty());
                    let field = result["field"].as_str().unwrap_or("-");
                    rejections.push(format!(
                        "{name}#{index}\t{}\t{field}\t{reason}",
                        result["code"].as_str().expect("code")
                    ));
                }
                status => {
                    if status == "accepted" {
                        accepted += 1;
                    } else {
                        duplicates += 1;
                    }
                    let event_id = result["eventID"].as_str().expect("eventID").to_owned();
                    let sent: serde_json::Value =
                        serde_json::from_slice(line).expect("accepted records are JSON");
                    let region = sent["awsRegion"].as_str().expect("region");
                    let insight = sent["eventType"] == "AwsCloudTrailInsight";
                    let query = format!(
                        "/v1/event-history?region={region}&lookup-attribute={}{}",
                        encode(&format!("EventId={event_id}")),
                        if insight {
                            "&event-category=insight"
                        } else {
                            ""
                        }
                    );
                    let (status, page) = server.get(&query).await;
                    assert_eq!(status, 200, "{name}#{index}: {page}");
                    match page["Events"].as_array().expect("events").as_slice() {
                        [event] => {
                            found_in_history += 1;
                            let stored =
                                event["CloudTrailEvent"].as_str().expect("CloudTrailEvent");
                            if status == 200 && result["status"] == "accepted" {
                                assert!(
                                    is_sent_plus_appended(line, stored.as_bytes()),
                                    "{name}#{index}: stored record differs from the one sent:\nsent:   {}\nstored: {stored}",
                                    String::from_utf8_lossy(line)
                                );
                                accepted_records.push((event_id, stored.as_bytes().to_vec()));
                            }
                        }
                        [] => {
                            // Only data and network-activity events stay out of Event history.
                            not_in_history += 1;
                            let category = sent["eventCategory"]
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| {
                                    let source = sent["eventSource"].as_str().unwrap_or("");
                                    let name = sent["eventName"].as_str().unwrap_or("");
                                    if sent["managementEvent"] == false
                                        || cairn_model::classify::is_known_data_plane_call(
                                            source, name,
                                        )
                                    {
                                        "Data".to_owned()
                                    } else {
                                        "Management".to_owned()
                                    }
                                });
                            assert!(
                                category == "Data" || category == "NetworkActivity",
                                "{name}#{index}: {category} event {event_id} not found in history"
                            );
                        }
                        more => panic!("{name}#{index}: {} events share id {event_id}", more.len()),
                    }
                }
            }
        }
    }
    server.stop().await;

    // Every accepted record is in the WAL exactly once, byte for byte as history returned it.
    let (wal, _) = cairn_wal::Wal::open(
        &dir.path().join("wal"),
        std::sync::Arc::new(cairn_wal::fs::StdFs),
        cairn_wal::WalConfig::default(),
        std::sync::Arc::new(cairn_wal::NoopObserver),
    )
    .expect("reopen wal");
    let mut reader = wal.reader(0);
    let mut in_wal: std::collections::HashMap<String, Vec<Vec<u8>>> = Default::default();
    loop {
        let batch = reader.read_batch(1000, 1 << 20).expect("read wal");
        if batch.is_empty() {
            break;
        }
        for record in batch {
            let decoded = cairn_model::payload::decode(&record.payload).expect("payload");
            let stored = decoded.record;
            // The selection fields carried beside the record read exactly as the record does.
            let from_fields = cairn_selectors::Subject::from_fields(
                cairn_model::fields::FieldsRef::decode(decoded.fields.expect("v2 payload"))
                    .expect("fields"),
            );
            assert_eq!(
                from_fields,
                cairn_selectors::Subject::from_record(stored).expect("subject")
            );
            let view = cairn_model::EventView::from_record(stored).expect("view");
            in_wal
                .entry(view.event_id)
                .or_default()
                .push(stored.to_vec());
        }
    }
    for (event_id, stored) in &accepted_records {
        assert_eq!(
            in_wal.get(event_id).map(Vec::len),
            Some(1),
            "{event_id} in the WAL once"
        );
        assert_eq!(
            &in_wal[event_id][0], stored,
            "{event_id}: WAL and history agree"
        );
    }

    rejections.sort();
    let listing = format!(
        "# Sample-corpus records Cairn rejects: file#index, code, field, reason.\n# accepted {accepted}, duplicates {duplicates}, found in history {found_in_history}, data events not in history {not_in_history}, rejected {}\n{}\n",
        rejections.len(),
        rejections.join("\n")
    );
    let golden = support::repo_root().join("testdata/corpus-rejections.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &listing).expect("write golden");
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert_eq!(
        listing, expected,
        "corpus results changed; review and regenerate with UPDATE_GOLDEN=1"
    );
}
