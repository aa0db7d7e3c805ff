use super::*;

fn gzip(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).expect("gzip");
    e.finish().expect("gzip")
}

#[test]
fn a_key_names_its_account_region_and_minute_when_they_are_well_formed() {
    let base = "t/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/02/28/";
    /// File name, account, region, minute.
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
    let cases: &[Case<'_>] = &[
        (
            "111122223333_CloudTrail_eu-west-1_20260228T2355Z_aBc_d.json.gz",
            Some("111122223333"),
            Some("eu-west-1"),
            Some("2026-02-28T23:55:00Z"),
        ),
        (
            "111122223333_CloudTrail-Insight_us-east-1_20240229T0000Z_x.json.gz",
            Some("111122223333"),
            Some("us-east-1"),
            Some("2024-02-29T00:00:00Z"),
        ),
        // Not a date: February 29 of a common year, day 31 of April, hour 24, minute 60,
        // a letter, the wrong shape.
        (
            "111122223333_CloudTrail_eu-west-1_20260229T0000Z_x.json.gz",
            Some("111122223333"),
            Some("eu-west-1"),
            None,
        ),
        (
            "111122223333_CloudTrail_eu-west-1_20260431T0000Z_x.json.gz",
            Some("111122223333"),
            Some("eu-west-1"),
            None,
        ),
        (
            "111122223333_CloudTrail_eu-west-1_20260401T2400Z_x.json.gz",
            Some("111122223333"),
            Some("eu-west-1"),
            None,
        ),
        (
            "111122223333_CloudTrail_eu-west-1_20260401T0060Z_x.json.gz",
            Some("111122223333"),
            Some("eu-west-1"),
            None,
        ),
        (
            "111122223333_CloudTrail_eu-west-1_2026040aT0000Z_x.json.gz",
            Some("111122223333"),
            Some("eu-west-1"),
            None,
        ),
        (
            "111122223333_CloudTrail_eu-west-1_20260401T000Z_x.json.gz",
            Some("111122223333"),
            Some("eu-west-1"),
            None,
        ),
        // An account that is not 12 digits; too few parts; another naming.
        (
            "11112222333_CloudTrail_eu-west-1_20260401T0000Z_x.json.gz",
            None,
            Some("eu-west-1"),
            Some("2026-04-01T00:00:00Z"),
        ),
        (
            "111122223333_CloudTrail_eu-west-1_20260401T0000Z.json.gz",
            None,
            None,
            None,
        ),
        ("export-0001.json.gz", None, None, None),
    ];
    for (name, account, region, minute) in cases {
        let file = classify(&format!("{base}{name}")).expect(name);
        assert_eq!(file.location, format!("{base}{name}"));
        assert_eq!(file.account.as_deref(), *account, "{name}");
        assert_eq!(file.region.as_deref(), *region, "{name}");
        let expected = minute.map(|m| cairn_model::time::parse_utc(m).expect("time"));
        assert_eq!(file.minute, expected, "{name}");
    }
    for not_a_log in [
        "t/AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2026/02/28/111122223333_CloudTrail-Digest_eu-west-1_t_eu-west-1_20260228T2355Z.json.gz",
        "t/AWSLogs/111122223333/CloudTrail-Digest/x.json.gz",
        "t/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/02/28/notes.txt",
    ] {
        assert_eq!(classify(not_a_log), None, "{not_a_log}");
    }
}

/// [`walk`] of a tree of empty files at `paths`: the paths it lists, under its root.
fn listing_of(paths: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    for path in paths {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, b"").expect("write");
    }
    let root = dir.path().display().to_string();
    walk(dir.path())
        .expect("walk")
        .into_iter()
        .map(|p| p.strip_prefix(&root).expect("under the root").to_owned())
        .collect()
}

#[test]
fn a_tree_is_listed_files_first_then_subdirectories_in_name_order() {
    let paths = [
        "b/2.json.gz",
        "b/1.json.gz",
        "a-x/z.json.gz",
        "a/y/3.json.gz",
        "c.txt",
    ];
    assert_eq!(
        listing_of(&paths.map(str::to_owned)),
        [
            "/c.txt",
            "/a/y/3.json.gz",
            "/a-x/z.json.gz",
            "/b/1.json.gz",
            "/b/2.json.gz",
        ]
    );
}

#[cfg(unix)]
#[test]
fn a_directory_or_file_reached_again_through_a_link_is_listed_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for path in ["a/1.json.gz", "a/x/y", "b/c/2.json.gz"] {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().expect("parent")).expect("mkdir");
        std::fs::write(full, b"").expect("write");
    }
    let link = |target: &str, at: &str| {
        std::os::unix::fs::symlink(target, root.join(at)).expect("symlink");
    };
    link("..", "a/up"); // a cycle: back to the root
    link("../c", "b/c/loop"); // a cycle: to its own directory
    link(&root.join("b/c").display().to_string(), "a/x/alias"); // b/c again, deeper
    link("a", "z"); // a again, as deep, later in name order
    link("1.json.gz", "a/again.json.gz"); // a file twice in one directory
    link("../../b/c/2.json.gz", "a/x/two.json.gz"); // a file of another directory
    link("a/missing.json.gz", "broken.json.gz"); // a link to nothing: listed, fails to read
    link(&root.join("elsewhere").display().to_string(), "d"); // only reached by a link
    std::fs::create_dir(root.join("elsewhere")).expect("mkdir");
    std::fs::write(root.join("elsewhere/3.json.gz"), b"").expect("write");
    let prefix = root.display().to_string();
    let listed: Vec<String> = walk(root)
        .expect("walk")
        .into_iter()
        .map(|p| p.strip_prefix(&prefix).expect("under the root").to_owned())
        .collect();
    // `elsewhere` is a directory of the root too: it is reached first through `d`.
    assert_eq!(
        listed,
        [
            "/broken.json.gz",
            "/a/1.json.gz",
            "/a/x/y",
            "/b/c/2.json.gz",
            "/d/3.json.gz"
        ],
        "{listed:?}"
    );
}

#[test]
fn a_long_listing_is_classified_in_shares_and_keeps_its_order() {
    let locations: Vec<String> = (0..120_001)
        .map(|i| {
            if i % 3 == 0 {
                format!("t/notes-{i}.txt")
            } else {
                format!(
                    "t/AWSLogs/111122223333/CloudTrail/eu-west-1/2026/02/28/\
                     111122223333_CloudTrail_eu-west-1_20260228T{:02}{:02}Z_{i}.json.gz",
                    i / 60 % 24,
                    i % 60
                )
            }
        })
        .collect();
    let one_by_one: Vec<LogFile> = locations.iter().filter_map(|l| classify(l)).collect();
    assert_eq!(one_by_one.len(), 80_000);
    assert_eq!(classify_all(locations), one_by_one);
}

#[test]
fn the_directories_listed_in_parallel_come_out_in_name_order() {
    // Wide enough that every depth is split between threads on any machine with two cores.
    let paths: Vec<String> = (0..9)
        .flat_map(|d| [format!("d{d}/f.json.gz"), format!("d{d}/x/g{d}.json.gz")])
        .collect();
    let expected: Vec<String> = paths.iter().map(|p| format!("/{p}")).collect();
    assert_eq!(listing_of(&paths), expected);
}

#[test]
fn read_into_gives_each_file_whole_from_one_growing_buffer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (big_path, small_path) = (dir.path().join("big"), dir.path().join("small"));
    std::fs::write(&big_path, &big).expect("write");
    std::fs::write(&small_path, b"tiny").expect("write");
    let mut buffer = Vec::new();
    let mut opener = Opener::default();
    for _ in 0..2 {
        let path = big_path.to_str().expect("utf-8");
        assert_eq!(opener.read_into(path, &mut buffer).expect("read"), big);
        let path = small_path.to_str().expect("utf-8");
        assert_eq!(opener.read_into(path, &mut buffer).expect("read"), b"tiny");
    }
    let missing = dir.path().join("missing");
    let missing = opener.read_into(missing.to_str().expect("utf-8"), &mut buffer);
    assert!(missing.is_err_and(|e| e.contains("No such file")));
}

/// Files of several directories, taken in turn and again, read as their paths name them;
/// what cannot be opened fails as opening it by its path does.
#[test]
fn an_opener_opens_each_file_its_path_names() {
    use std::io::Read;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_str().expect("utf-8").to_owned();
    let mut paths = Vec::new();
    for d in ["a", "b", "a/c"] {
        std::fs::create_dir_all(format!("{root}/{d}")).expect("mkdir");
        for f in ["x", "y"] {
            let path = format!("{root}/{d}/{f}");
            std::fs::write(&path, &path).expect("write");
            paths.push(path);
        }
    }
    let mut opener = Opener::default();
    let read = |opener: &mut Opener, path: &str| {
        let mut text = String::new();
        opener.open(path)?.read_to_string(&mut text)?;
        std::io::Result::Ok(text)
    };
    for path in paths.iter().chain(paths.iter().rev()).chain(paths.iter()) {
        assert_eq!(read(&mut opener, path).expect("read"), *path);
    }
    // Missing files, in a directory open and in one that is not there; a directory; a
    // path ending in `/`: the errors opening by path gives.
    for path in [
        format!("{root}/a/missing"),
        format!("{root}/gone/x"),
        format!("{root}/a/"),
        "no-such-file-without-a-directory".to_owned(),
    ] {
        let by_path = std::fs::File::open(&path).map(|_| ());
        let opened = opener.open(&path).map(|_| ());
        assert_eq!(
            opened.map_err(|e| e.kind()),
            by_path.map_err(|e| e.kind()),
            "{path}"
        );
    }
    assert!(read(&mut opener, &format!("{root}/a")).is_err());
    // The tree's files again after the failures.
    for path in &paths {
        assert_eq!(read(&mut opener, path).expect("read"), *path);
    }
    // On Unix the files of the directory last opened are opened through it, not by their
    // paths: its files are still found after it is renamed, until another directory's.
    #[cfg(unix)]
    {
        let (x, y) = (&paths[4], &paths[5]); // a/c/x, a/c/y
        assert_eq!(read(&mut opener, x).expect("read"), *x);
        std::fs::rename(format!("{root}/a/c"), format!("{root}/a/moved")).expect("rename");
        assert_eq!(read(&mut opener, y).expect("through the directory"), *y);
        read(&mut opener, &paths[0]).expect("another directory");
        assert!(read(&mut opener, y).is_err(), "{y} opened by path");
    }
}

#[test]
fn gunzip_takes_one_member_and_names_what_is_wrong_otherwise() {
    let mut inflater = Inflater::new();
    let mut buffer = Vec::new();
    let one = gzip(r#"{"Records":[]}"#);
    assert_eq!(
        gunzip(&one, &mut inflater, &mut buffer).expect("one member"),
        br#"{"Records":[]}"#
    );
    // Two members: the trailer is the second's, so the streaming decoder refuses the file.
    let two = [one.clone(), gzip(r#"{"Records":[{}]}"#)].concat();
    assert!(gunzip(&two, &mut inflater, &mut buffer)
        .expect_err("two members")
        .contains("after"));
    // Two members of the first one's size, the same text or another: libdeflate reads the
    // first alone and checks it against its own trailer; the file's last trailer has the
    // size it decoded (and, for the same text, its CRC-32 too).
    for second in [r#"{"Records":[]}"#, r#"{"Records":{}}"#] {
        let twice = [one.clone(), gzip(second)].concat();
        assert!(gunzip(&twice, &mut inflater, &mut buffer)
            .expect_err("two members of one size")
            .contains("after"));
    }
    let truncated = &one[..one.len() - 3];
    assert!(gunzip(truncated, &mut inflater, &mut buffer).is_err());
    let mut corrupt = one.clone();
    let n = corrupt.len();
    corrupt[n - 8] ^= 1; // the CRC-32
    assert!(gunzip(&corrupt, &mut inflater, &mut buffer).is_err());
    assert!(gunzip(b"not gzip", &mut inflater, &mut buffer).is_err());
    // A smaller file after a larger one: exactly its own bytes, none left from before.
    let larger = gzip(r#"{"Records":[{"eventName":"A"},{"eventName":"B"}]}"#);
    assert_eq!(
        gunzip(&larger, &mut inflater, &mut buffer)
            .expect("larger")
            .len(),
        49
    );
    assert_eq!(
        gunzip(&one, &mut inflater, &mut buffer).expect("smaller"),
        br#"{"Records":[]}"#
    );
}
