//! `cairn bench scan`: raw mode's JSON scan alone, on one core, over log files already inflated
//! in memory: no file system, no DataFusion, no other thread. Beside it, in the same run, the
//! same files inflated again and checked by `serde_json` with nothing built. The runs of each
//! kind alternate and the fastest counts, so the ratios hold while the machine's speed moves.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct ScanBenchArgs {
    /// A tree of CloudTrail log files (`cairn bench lake` leaves `tree-busy` and `tree-small`
    /// in its directory).
    #[arg(long)]
    tree: PathBuf,
    /// Log files taken from the tree, spread evenly over its listing.
    #[arg(long, default_value_t = 5_000)]
    files: usize,
    /// Runs of each kind; the fastest counts.
    #[arg(long, default_value_t = 7)]
    runs: usize,
}

/// What one kind of run does with every file.
#[derive(Clone, Copy)]
enum Work {
    Inflate,
    SerdeCheck,
    /// The scan, building the columns of `SELECT *`.
    ScanAll,
    /// The scan, building `userIdentity.arn` and `sourceIPAddress` only (the distinct source
    /// IPs per user query).
    ScanTwo,
    /// The scan, building no column (what `count(*)` reads): checking the text and finding
    /// each record's `eventSource` is all it does, the least any query over every record pays.
    ScanNone,
}

impl Work {
    /// Every kind, in the order they run and are printed.
    const ALL: [Work; 5] = [
        Work::Inflate,
        Work::SerdeCheck,
        Work::ScanAll,
        Work::ScanTwo,
        Work::ScanNone,
    ];

    /// Whether the run is one of raw mode's scans, which must meet every record.
    fn is_scan(self) -> bool {
        !matches!(self, Work::Inflate | Work::SerdeCheck)
    }

    fn name(self) -> &'static str {
        match self {
            Work::Inflate => "inflate (libdeflate, as raw mode does)",
            Work::SerdeCheck => "check with serde_json (IgnoredAny)",
            Work::ScanAll => "Cairn scan, every column",
            Work::ScanTwo => "Cairn scan, userIdentity.arn + sourceIPAddress",
            Work::ScanNone => "Cairn scan, no column (count(*))",
        }
    }
}

pub async fn scan(args: ScanBenchArgs) -> anyhow::Result<()> {
    if args.files == 0 || args.runs == 0 {
        bail!("--files and --runs must be at least 1");
    }
    let tree =
        cairn_lake::raw::TreeTable::open(cairn_lake::raw::TreeSource::Dir(args.tree.clone()), None)
            .await?;
    let all = tree.files();
    let step = (all.len() / args.files).max(1);
    let locations: Vec<&str> = all
        .iter()
        .step_by(step)
        .take(args.files)
        .map(|f| f.location.as_str())
        .collect();
    if locations.is_empty() {
        bail!("no log files under {}", args.tree.display());
    }
    // Each file read, inflated and counted by `serde_json` once; one that fails any of these
    // (damaged, not a log file) is left out and counted.
    let mut inflater = cairn_lake::raw::Inflater::new();
    let (mut compressed, mut json) = (Vec::new(), Vec::new());
    let (mut buffer, mut inflated) = (Vec::new(), Vec::new());
    let (mut records, mut left_out) = (0, 0);
    let mut opener = cairn_lake::raw::Opener::default();
    for &location in &locations {
        let loaded = opener.read_into(location, &mut buffer).and_then(|bytes| {
            let text = cairn_lake::raw::gunzip(bytes, &mut inflater, &mut inflated)?;
            let n = count_records(text).map_err(|e| e.to_string())?;
            Ok((bytes.to_vec(), text.to_vec(), n))
        });
        match loaded {
            Ok((bytes, text, n)) => {
                compressed.push(bytes);
                json.push(text);
                records += n;
            }
            Err(_) => left_out += 1,
        }
    }
    if json.is_empty() {
        bail!(
            "none of the {} files taken is a readable log file",
            locations.len()
        );
    }
    let json_bytes: usize = json.iter().map(Vec::len).sum();
    println!(
        "{} log files ({left_out} more left out: damaged or not log files), {:.1} MB \
         compressed, {:.1} MB of JSON, {records} records; one core, fastest of {} runs each",
        json.len(),
        compressed.iter().map(Vec::len).sum::<usize>() as f64 / 1e6,
        json_bytes as f64 / 1e6,
        args.runs,
    );
    let mut best = [f64::INFINITY; Work::ALL.len()];
    for _ in 0..args.runs {
        for (k, work) in Work::ALL.into_iter().enumerate() {
            let t = Instant::now();
            let taken = run(work, &compressed, &json, &mut inflater, &mut inflated)?;
            best[k] = best[k].min(t.elapsed().as_secs_f64());
            if work.is_scan() && taken != records {
                bail!("{}: {taken} records, not {records}", work.name());
            }
        }
    }
    println!(
        "{:<50} {:>9} {:>10} {:>10}",
        "work", "seconds", "MB/s JSON", "/ inflate"
    );
    for (k, work) in Work::ALL.into_iter().enumerate() {
        println!(
            "{:<50} {:>9.3} {:>10.0} {:>10.2}",
            work.name(),
            best[k],
            json_bytes as f64 / 1e6 / best[k],
            best[k] / best[0],
        );
    }
    Ok(())
}

/// The records of one log file, counted by `serde_json`.
fn count_records(text: &[u8]) -> anyhow::Result<usize> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(rename = "Records")]
        records: Vec<serde::de::IgnoredAny>,
    }
    let file: File = serde_json::from_slice(text).context("not a CloudTrail log file")?;
    Ok(file.records.len())
}

/// One run of `work` over every file: for the scans, the records they met (rows built, and
/// notifications and malformed records left out), which must be what `serde_json` counted.
fn run(
    work: Work,
    compressed: &[Vec<u8>],
    json: &[Vec<u8>],
    inflater: &mut cairn_lake::raw::Inflater,
    buffer: &mut Vec<u8>,
) -> anyhow::Result<usize> {
    use cairn_lake::columns::{column_index, EventsBuilder};
    let mut met = 0;
    match work {
        Work::Inflate => {
            for bytes in compressed {
                let out = cairn_lake::raw::gunzip(bytes, inflater, buffer)
                    .map_err(|e| anyhow::anyhow!(e))?;
                std::hint::black_box(out);
            }
        }
        Work::SerdeCheck => {
            for text in json {
                serde_json::from_slice::<serde::de::IgnoredAny>(text)?;
            }
        }
        Work::ScanAll | Work::ScanTwo | Work::ScanNone => {
            let mut events = match work {
                Work::ScanTwo => {
                    let identity = column_index("userIdentity").context("userIdentity")?;
                    let ip = column_index("sourceIPAddress").context("sourceIPAddress")?;
                    EventsBuilder::new(Some(&[identity, ip]))
                        .reading_members(identity, &["arn".to_owned()])
                }
                Work::ScanNone => EventsBuilder::new(Some(&[])),
                _ => EventsBuilder::new(None),
            };
            let mut rows = 0;
            for text in json {
                let (added, _) = events
                    .append_file_where(text, None)
                    .map_err(|e| anyhow::anyhow!(e))?;
                met += added.foreign + added.malformed;
                // Batches of the size raw mode sends.
                if events.rows() >= cairn_lake::raw::BATCH_ROWS {
                    rows += events.finish().num_rows();
                }
            }
            met += rows + events.finish().num_rows();
        }
    }
    Ok(met)
}
