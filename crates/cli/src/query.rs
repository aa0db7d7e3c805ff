//! `cairn query --source DIR "SQL"`: SQL over a CloudTrail tree (raw mode).

use anyhow::Context;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryOutput {
    /// A text table.
    Table,
    /// One JSON object per row (values as displayed).
    Json,
    /// CSV with a header (values as displayed).
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// A directory holding a CloudTrail tree of `.json.gz` log files (Cairn's or AWS's layout);
    /// it appears as the table `events`.
    #[arg(long)]
    source: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryOutput::Table)]
    output: QueryOutput,
    /// The query, e.g. `SELECT eventName, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC`.
    sql: String,
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// `cairn query`.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    use datafusion_display::rows;
    let started = std::time::Instant::now();
    let (batches, report) = cairn_lake::query_tree(&args.source, &args.sql)
        .await
        .with_context(|| format!("querying {}", args.source.display()))?;
    match args.output {
        QueryOutput::Table => println!("{}", cairn_lake::to_table(&batches)?),
        QueryOutput::Json => {
            for row in rows(&batches)? {
                println!(
                    "{}",
                    serde_json::Value::Object(
                        row.into_iter()
                            .map(|(k, v)| (k, serde_json::Value::String(v)))
                            .collect()
                    )
                );
            }
        }
        QueryOutput::Csv => {
            let mut header_done = false;
            for row in rows(&batches)? {
                if !header_done {
                    println!(
                        "{}",
                        row.iter()
                            .map(|(k, _)| csv_field(k))
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    header_done = true;
                }
                println!(
                    "{}",
                    row.iter()
                        .map(|(_, v)| csv_field(v))
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
    }
    for (file, why) in &report.malformed {
        eprintln!("skipped {file}: {why}");
    }
    eprintln!(
        "{} files ({:.1} MB), {} records scanned, {} skipped, {} malformed, {:.2} s",
        report.files,
        report.bytes as f64 / 1e6,
        report.records,
        report.skipped,
        report.malformed.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

mod datafusion_display {
    use cairn_lake::datafusion::arrow::record_batch::RecordBatch;
    use cairn_lake::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

    /// Each row as (column, displayed value) pairs.
    pub fn rows(batches: &[RecordBatch]) -> anyhow::Result<Vec<Vec<(String, String)>>> {
        let mut out = Vec::new();
        let options = FormatOptions::default();
        for batch in batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            let names: Vec<String> = batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            for row in 0..batch.num_rows() {
                out.push(
                    names
                        .iter()
                        .zip(&formatters)
                        .map(|(n, f)| (n.clone(), f.value(row).to_string()))
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}
