//! A tree's files: listed (a local tree walked in parallel, each directory once; or an S3
//! prefix), and each classified by its key as a log file of an account, region and minute.

use super::*;

/// One log file of the tree and what its key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Path (directory source) or key (object store).
    pub location: String,
    /// Account from the file name.
    pub account: Option<String>,
    /// Region from the file name.
    pub region: Option<String>,
    /// Delivery minute from the file name (epoch ms).
    pub minute: Option<i64>,
}

/// What the key of a file says: `None` if it is not a log file (digests, anything else).
pub fn classify(location: &str) -> Option<LogFile> {
    classify_owned(location.to_owned())
}

/// [`classify`], keeping `location`.
pub(super) fn classify_owned(location: String) -> Option<LogFile> {
    let name = location.rsplit('/').next().unwrap_or(&location);
    if !name.ends_with(".json.gz")
        || name.contains("_CloudTrail-Digest_")
        || location.contains("/CloudTrail-Digest/")
    {
        return None;
    }
    // <account>_CloudTrail[-Insight]_<region>_<YYYYMMDDTHHmmZ>_<unique>.json.gz
    let mut parts = name.splitn(5, '_');
    let (account, kind, region, stamp, rest) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    );
    let (account, region, stamp) = match (kind, rest) {
        (Some(kind), Some(_)) if kind.starts_with("CloudTrail") => (account, region, stamp),
        _ => (None, None, None),
    };
    let account = account
        .filter(|a| a.len() == 12 && a.bytes().all(|c| c.is_ascii_digit()))
        .map(str::to_owned);
    let region = region.map(str::to_owned);
    let minute = stamp.and_then(stamp_minute);
    Some(LogFile {
        location,
        account,
        region,
        minute,
    })
}

/// [`classify`] of every location, in their order: the log files. A share per core for long
/// listings (450,000 names took a tenth of a second on one).
pub(super) fn classify_all(locations: Vec<String>) -> Vec<LogFile> {
    crate::map_on_cores(locations, 50_000, classify_owned)
        .into_iter()
        .flatten()
        .collect()
}

/// The minute a file name's stamp (`20261201T0005Z`) names, epoch ms; `None` unless it is a
/// real date and time.
pub(super) fn stamp_minute(stamp: &str) -> Option<i64> {
    let b = stamp.as_bytes();
    if b.len() != 14 || b[8] != b'T' || b[13] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0i64, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute) = (number(9..11)?, number(11..13)?);
    if !(1..=12).contains(&month) || day < 1 || hour > 23 || minute > 59 {
        return None;
    }
    let days = cairn_model::time::days_from_civil(year, month, day);
    // Day 31 of a 30-day month (or February 29 of a common year) names another date.
    (cairn_model::time::civil_from_days(days) == (year, month, day))
        .then_some(days * 86_400_000 + hour * 3_600_000 + minute * 60_000)
}

/// Every file of the tree (paths in `walk`'s order, keys in the store's), log files or not.
pub async fn list(source: &TreeSource) -> Result<Vec<String>, crate::LakeError> {
    match source {
        TreeSource::Dir(dir) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || walk(&dir))
                .await
                .map_err(|e| crate::LakeError::Read {
                    path: "tree".into(),
                    message: e.to_string(),
                })?
        }
        TreeSource::Objects { store, prefix } => cairn_store::list(store.as_ref(), prefix)
            .await
            .map_err(|e| crate::LakeError::Read {
                path: prefix.clone(),
                message: e.to_string(),
            }),
    }
}

/// Lists every file under `dir`: a directory's files in name order, then its subdirectories'
/// the same way, in name order (the same order on every run; not a sort of the whole paths,
/// which on 450,000 files cost a tenth of the listing). The directories of one depth are
/// listed in parallel, one share per core (listing a tree of 450,000 small files took most of
/// a second on one core), and the listings are put in that order afterwards.
///
/// Symbolic links are followed, and each directory is listed once: one reached again (a link
/// to a directory listed already, or to one of its own ancestors) is left out, so that no file
/// is read twice and a cycle of links ends. Of two paths to one directory, the one the walk
/// meets first (the shallower, then the first in name order) is kept. Likewise a link to a
/// file of the tree, or to one an earlier link reached, is left out.
pub(super) fn walk(dir: &std::path::Path) -> Result<Vec<String>, crate::LakeError> {
    use std::collections::{HashMap, HashSet};
    use std::path::PathBuf;
    let mut listed: HashMap<PathBuf, Listing> = HashMap::new();
    let root = node_id(dir);
    let mut seen: HashSet<NodeId> = root.iter().cloned().collect();
    let mut depth = vec![(dir.to_path_buf(), root)];
    while !depth.is_empty() {
        let listings = crate::map_on_cores(depth, 1, |(d, id)| {
            let listing = list_dir(&d, id.as_ref());
            (d, listing)
        });
        let mut next = Vec::new();
        for (d, listing) in listings {
            let mut listing = listing?;
            // In the order of the walk, so that the same path is kept on every run.
            listing
                .dirs
                .retain(|(_, id)| id.as_ref().is_none_or(|id| seen.insert(id.to_owned())));
            next.extend(listing.dirs.iter().cloned());
            listed.insert(d, listing);
        }
        depth = next;
    }
    let mut out = Vec::with_capacity(listed.values().map(|l| l.files.len()).sum());
    // A symbolic link to a file is read only if the file is not in the tree itself, nor reached
    // by a link listed before (files that are not links are always read). Only a tree with
    // links to files gathers what its files are (known without a `stat`: see `plain_file_id`).
    let linked = |l: &Listing| l.link_targets.iter().any(Option::is_some);
    let mut files_seen = listed.values().any(linked).then(|| {
        let plain = listed.values().flat_map(|l| l.plain_ids.iter().cloned());
        plain.collect::<HashSet<NodeId>>()
    });
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        // Every directory is listed, and once: each path is its parent's and a name in it.
        let listing = listed.remove(&d).expect("a listed directory");
        match files_seen.as_mut() {
            None => out.extend(listing.files),
            Some(seen) => {
                let files = listing.files.into_iter().zip(listing.link_targets);
                out.extend(files.filter_map(|(file, target)| match target {
                    Some(target) if !seen.insert(target) => None,
                    _ => Some(file),
                }));
            }
        }
        // Popped last first: visit the subdirectories in name order.
        stack.extend(listing.dirs.into_iter().rev().map(|(path, _)| path));
    }
    Ok(out)
}

/// One directory's files and subdirectories, each in name order.
pub(super) struct Listing {
    files: Vec<String>,
    /// For each of `files`, what it points to if it is a symbolic link (`None`: not a link, or
    /// one to nothing; the file is read).
    link_targets: Vec<Option<NodeId>>,
    /// What the files that are not links are, when known.
    plain_ids: Vec<NodeId>,
    /// Each subdirectory with what it is, links followed (`None`: not known; it is listed).
    dirs: Vec<(std::path::PathBuf, Option<NodeId>)>,
}

/// What a file or directory is, whatever the path to it: its device and inode.
#[cfg(unix)]
type NodeId = (u64, u64);

/// What a file or directory is, whatever the path to it: its path with every link resolved.
#[cfg(not(unix))]
type NodeId = std::path::PathBuf;

/// One `stat`, following links (made per directory and per link, not per file).
#[cfg(unix)]
pub(super) fn node_id(path: &std::path::Path) -> Option<NodeId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
pub(super) fn node_id(path: &std::path::Path) -> Option<NodeId> {
    std::fs::canonicalize(path).ok()
}

/// What a file that is not a link is, from its directory's listing without a `stat`: the
/// directory's device and the entry's inode (`None` elsewhere than Unix, where links to files
/// are not told from their targets).
#[cfg(unix)]
pub(super) fn plain_file_id(entry: &std::fs::DirEntry, dir: Option<&NodeId>) -> Option<NodeId> {
    use std::os::unix::fs::DirEntryExt;
    dir.map(|&(dev, _)| (dev, entry.ino()))
}

#[cfg(not(unix))]
pub(super) fn plain_file_id(_: &std::fs::DirEntry, _: Option<&NodeId>) -> Option<NodeId> {
    None
}

/// What a directory entry is, and what it is or points to, when known.
pub(super) enum Entry {
    Dir(Option<NodeId>),
    LinkToFile(Option<NodeId>),
    File(Option<NodeId>),
}

/// Lists directory `d`, which is `id` (see [`NodeId`]).
pub(super) fn list_dir(
    d: &std::path::Path,
    id: Option<&NodeId>,
) -> Result<Listing, crate::LakeError> {
    let listing = std::fs::read_dir(d).map_err(|e| crate::LakeError::Read {
        path: d.display().to_string(),
        message: e.to_string(),
    })?;
    let mut entries = Vec::new();
    for entry in listing.flatten() {
        // The entry's type comes with the directory listing (no `stat` per file, which on a
        // tree of 450,000 small files was a second of the query); symbolic links are followed.
        let followed = |path: std::path::PathBuf| {
            if path.is_dir() {
                Entry::Dir(node_id(&path))
            } else {
                Entry::LinkToFile(node_id(&path))
            }
        };
        let kind = match entry.file_type() {
            Ok(t) if t.is_symlink() => followed(entry.path()),
            Ok(t) if t.is_dir() => Entry::Dir(node_id(&entry.path())),
            Ok(_) => Entry::File(plain_file_id(&entry, id)),
            Err(_) if entry.path().is_dir() => Entry::Dir(node_id(&entry.path())),
            Err(_) => Entry::File(None),
        };
        entries.push((entry.file_name(), kind));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = Listing {
        files: Vec::new(),
        link_targets: Vec::new(),
        plain_ids: Vec::new(),
        dirs: Vec::new(),
    };
    for (name, kind) in entries {
        let path = d.join(name);
        let target = match kind {
            Entry::Dir(id) => {
                out.dirs.push((path, id));
                continue;
            }
            Entry::LinkToFile(target) => target,
            Entry::File(id) => {
                out.plain_ids.extend(id);
                None
            }
        };
        out.link_targets.push(target);
        // Paths are text almost always: taken as they are, not scanned for a lossy copy.
        out.files.push(
            path.into_os_string()
                .into_string()
                .unwrap_or_else(|p| p.to_string_lossy().into_owned()),
        );
    }
    Ok(out)
}
