//! The store contract on a real S3-compatible server (moto, started on 127.0.0.1).

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_compatible_store_keeps_the_contract() {
    let moto = support::Moto::start();
    moto.create_bucket("audit-logs").await;
    let store = cairn_store::s3(&moto.s3_config(), "audit-logs").expect("store");
    cairn_store::testing::contract(store.as_ref(), cairn_store::MetadataStyle::ObjectMetadata)
        .await;
}
