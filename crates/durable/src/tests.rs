//! A database on storage that fails while "full" recovers by itself once space returns.

use super::*;
use redb::{StorageBackend, TableDefinition};
use std::io;

const TABLE: TableDefinition<u64, u64> = TableDefinition::new("t");

/// In-memory storage kept across reopens; while `full`, growing or writing fails with ENOSPC.
#[derive(Debug, Clone, Default)]
struct Disk {
    bytes: Arc<Mutex<Vec<u8>>>,
    full: Arc<AtomicBool>,
}

impl Disk {
    fn refuse(&self) -> io::Result<()> {
        if self.full.load(Ordering::Acquire) {
            Err(io::Error::from_raw_os_error(28))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes.lock().expect("disk").len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let bytes = self.bytes.lock().expect("disk");
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        bytes
            .get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.refuse()?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.bytes.lock().expect("disk").resize(len, 0);
        Ok(())
    }

    fn sync_data(&self, _: bool) -> io::Result<()> {
        self.refuse()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.refuse()?;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let mut bytes = self.bytes.lock().expect("disk");
        if bytes.len() < start + data.len() {
            bytes.resize(start + data.len(), 0);
        }
        bytes[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }
}

fn open(disk: &Disk) -> Db {
    let backend = disk.clone();
    Db::with_opener(
        Path::new("test.redb"),
        Box::new(move || Database::builder().create_with_backend(backend.clone())),
    )
    .expect("open")
}

fn put(db: &Db, key: u64) -> Result<(), redb::Error> {
    let result = (|| {
        let handle = db.get()?;
        let tx = handle.begin_write()?;
        tx.open_table(TABLE)?.insert(key, key * 10)?;
        tx.commit()?;
        Ok(())
    })();
    if let Err(e) = &result {
        db.note(e);
    }
    result
}

fn get(db: &Db, key: u64) -> Result<Option<u64>, redb::Error> {
    let result = (|| {
        let handle = db.get()?;
        let tx = handle.begin_read()?;
        let table = tx.open_table(TABLE)?;
        let value = table.get(key)?.map(|v| v.value());
        Ok(value)
    })();
    if let Err(e) = &result {
        db.note(e);
    }
    result
}

#[test]
fn a_full_disk_fails_writes_and_the_database_recovers_once_space_returns() {
    let disk = Disk::default();
    let db = open(&disk);
    put(&db, 1).expect("first write");
    disk.full.store(true, Ordering::Release);
    // Grow the file until the disk refuses.
    let error = (2..10_000)
        .find_map(|k| put(&db, k).err())
        .expect("a full disk fails a commit");
    assert!(is_io(&error), "{error}");
    assert!(db.is_failed());
    // Space returns: the next use reopens (after the reopen interval) and everything that was
    // committed is there; writing works again.
    disk.full.store(false, Ordering::Release);
    std::thread::sleep(REOPEN_INTERVAL);
    assert_eq!(get(&db, 1).expect("read after recovery"), Some(10));
    assert!(!db.is_failed());
    put(&db, 20_000).expect("write after recovery");
    assert_eq!(get(&db, 20_000).expect("read"), Some(200_000));
}

#[test]
fn logical_errors_do_not_reopen() {
    let disk = Disk::default();
    let db = open(&disk);
    let handle = db.get().expect("db");
    let tx = handle.begin_read().expect("read");
    let error: redb::Error = tx.open_table(TABLE).expect_err("no such table").into();
    db.note(&error);
    assert!(!db.is_failed());
}
