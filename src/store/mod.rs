//! The partition store: a materialized view of one partition's log, kept in redb, behind a
//! small RocksDB-shaped interface ([`ReadView`], [`WriteView`]) that the state machine codes
//! against.
//!
//! Owns: the redb file of one partition (`partition-<id>.redb`, see
//! [`schema::partition_file_name`]), its tables (created on first open), the schema-version
//! check, and the `lsn_applied` recovery point in the Meta table. All redb calls of the crate
//! live in this module, so a redb major upgrade touches only `store/`. Table names and key
//! encodings live in [`schema`]; a crash-injecting backend for tests lives in [`sim`].
//!
//! Shape: [`PartitionStore::begin_write`] → [`WriteTxn`] (one atomic batch across tables, reads
//! see its own writes) → [`WriteTxn::commit`] with `durable = false` (redb
//! `Durability::None`: visible to later transactions, no fsync) or `durable = true` (redb
//! `Durability::Immediate`: fsync before returning; also records redb's allocator state so
//! recovery after a crash is quick). [`PartitionStore::begin_read`] → [`ReadTxn`], an MVCC
//! snapshot that never sees commits made after it began.
//!
//! Invariants:
//! - `lsn_applied` (Meta) is written in the same transaction as the effects of the records up
//!   to it, so whatever state a reopen finds, `lsn_applied` describes exactly that state.
//! - One writer at a time: `begin_write` blocks while another [`WriteTxn`] is alive.
//! - A file written by a newer schema ([`schema::SCHEMA_VERSION`]) is refused on open.
//! - Fail-stop: any error from a commit means the in-memory view can no longer be trusted to
//!   match the file; the owner drops the store, reopens it and replays the log after
//!   `lsn_applied`. Nothing here retries I/O.
//!
//! Crash semantics (read from the redb 4.5 sources and checked by `tests/store.rs` with
//! [`sim::SimBackend`] crash images and with a copy of a live file):
//! - A `Durability::None` commit updates only the in-memory header (secondary commit slot) and
//!   never writes the on-disk header nor syncs. Its pages stay in redb's cache (the write
//!   buffer counts against [`Options::cache_bytes_max`]) and reach the file only when the
//!   cache overflows, and then only pages that no durable commit references. So after a crash
//!   (process or power) the store reopens at exactly the **last durable commit**: every
//!   non-durable commit after it is lost, atomically, and `lsn_applied` read back matches the
//!   data. With a crash during a durable commit (its fsync failed), the reopened store is at
//!   that commit or the one before it; with quick repair (two-phase commit, which we enable
//!   on durable commits) the tests only ever saw the one before it.
//!   That satisfies our recovery contract ("at the last durable commit or a later non-durable
//!   one, with `lsn_applied` matching the data"); in practice the "later non-durable one" never
//!   happens on crash. The processor replays the log after `lsn_applied`.
//! - A clean close (`PartitionStore::close`, or drop) makes pending non-durable commits
//!   durable: redb's close runs one more durable commit. So after a clean shutdown nothing is
//!   lost, and only a crash falls back to the last checkpoint.
//! - The redb default concurrency mode (`ExclusiveWriter`) locks the whole file; opening the
//!   same file twice fails with an [`StoreError::Open`] (`DatabaseAlreadyOpen`).

pub mod schema;
pub mod sim;

use std::fmt;
use std::ops::Bound;
use std::path::Path;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition,
    TableHandle,
};
use segment_format::Lsn;

pub use schema::Table;
use schema::{KeyError, KEY_BYTES_MAX, VALUE_BYTES_MAX};

/// Errors of the partition store. Every variant that wraps redb says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("opening partition store {origin}: {source}")]
    Open {
        origin: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error(
        "partition store {origin} was written by schema version {found}, newer than this \
         build's {supported}; run the Ratchet version that wrote it, or a newer one"
    )]
    SchemaTooNew { origin: String, found: u32, supported: u32 },
    #[error(
        "partition store {origin} has schema version {found}, older than the oldest this build \
         opens ({min_supported}); there is no migration from it: finish its work with the \
         Ratchet version that wrote it, or start this one on a new data directory"
    )]
    SchemaTooOld { origin: String, found: u32, min_supported: u32 },
    #[error(
        "{origin} is a redb database but not a partition store (tables but no schema version)"
    )]
    NotAPartitionStore { origin: String },
    #[error("beginning a {kind} transaction: {source}")]
    Begin {
        kind: &'static str,
        #[source]
        source: redb::TransactionError,
    },
    #[error("opening table {table:?} for {op}: {source}")]
    OpenTable {
        table: Table,
        op: &'static str,
        #[source]
        source: redb::TableError,
    },
    #[error("{op} on table {table:?}: {source}")]
    Storage {
        table: Table,
        op: &'static str,
        #[source]
        source: redb::StorageError,
    },
    #[error("setting commit durability: {0}")]
    Durability(#[source] redb::SetDurabilityError),
    #[error("committing a write transaction (durable: {durable}): {source}")]
    Commit {
        durable: bool,
        #[source]
        source: redb::CommitError,
    },
    #[error("aborting a write transaction: {0}")]
    Abort(#[source] redb::StorageError),
    #[error("listing tables: {0}")]
    ListTables(#[source] redb::StorageError),
    #[error("closing partition store {origin}: {source}")]
    Close {
        origin: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("{table:?} key of {bytes} bytes is over the limit of {limit_bytes} bytes")]
    KeyTooLarge { table: Table, bytes: usize, limit_bytes: usize },
    #[error("{table:?} value of {bytes} bytes is over the limit of {limit_bytes} bytes")]
    ValueTooLarge { table: Table, bytes: usize, limit_bytes: usize },
    #[error("meta entry {key:?} has {found_bytes} bytes, expected {expected_bytes}; the store is corrupt")]
    MetaCorrupt { key: String, found_bytes: usize, expected_bytes: usize },
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A stored value did not decode: the file is damaged or was written by foreign code.
    #[error("a stored {table:?} value is unreadable: {detail}; the store is corrupt")]
    Corrupt { table: Table, detail: String },
}

impl StoreError {
    /// Whether opening failed because the file is still open (by this process: a component of
    /// the previous leadership has not let go of it yet). Retried, not fatal.
    pub fn is_already_open(&self) -> bool {
        matches!(self, StoreError::Open { source: redb::DatabaseError::DatabaseAlreadyOpen, .. })
    }

    /// Whether the error is the disk being full: backpressure, not a broken machine. The store
    /// must still be reopened (its in-memory view may be ahead of the file), but the process
    /// goes on and retries once space returns.
    pub fn is_no_space(&self) -> bool {
        fn io_no_space(e: &std::io::Error) -> bool {
            e.raw_os_error() == Some(libc::ENOSPC) || e.kind() == std::io::ErrorKind::StorageFull
        }
        fn storage(e: &redb::StorageError) -> bool {
            matches!(e, redb::StorageError::Io(io) if io_no_space(io))
        }
        match self {
            StoreError::Storage { source, .. }
            | StoreError::Abort(source)
            | StoreError::ListTables(source) => storage(source),
            StoreError::Commit { source: redb::CommitError::Storage(s), .. } => storage(s),
            StoreError::Begin { source: redb::TransactionError::Storage(s), .. } => storage(s),
            StoreError::OpenTable { source: redb::TableError::Storage(s), .. } => storage(s),
            StoreError::Open { source: redb::DatabaseError::Storage(s), .. }
            | StoreError::Close { source: redb::DatabaseError::Storage(s), .. } => storage(s),
            _ => false,
        }
    }
}

/// One row of a scan: (key, value).
pub type Row = (Vec<u8>, Vec<u8>);

/// How far a [`ReadView::scan_bounded`] goes.
#[derive(Clone, Debug)]
pub struct Scan {
    pub limit: usize,
    /// Bytes of keys and values (keys only with `keys_only`) read at most. Bytes.
    pub bytes_max: usize,
    pub reverse: bool,
    pub keys_only: bool,
}

impl Default for Scan {
    fn default() -> Scan {
        Scan { limit: usize::MAX, bytes_max: usize::MAX, reverse: false, keys_only: false }
    }
}

/// Reads of a snapshot or of a write transaction (which sees its own writes).
///
/// Scans return at most `limit` rows in ascending key order; to continue, scan again from
/// [`schema::key_after`] of the last key returned.
pub trait ReadView {
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Rows whose key starts with `prefix` (all rows for an empty prefix).
    fn scan_prefix(&self, t: Table, prefix: &[u8], limit: usize) -> Result<Vec<Row>, StoreError>;

    /// Rows with `start_inclusive <= key < end_exclusive`; empty if `start >= end`.
    fn scan_range(
        &self,
        t: Table,
        start_inclusive: &[u8],
        end_exclusive: &[u8],
        limit: usize,
    ) -> Result<Vec<Row>, StoreError>;

    /// The row with the greatest key starting with `prefix`, if any: O(log n), for appending
    /// to a sequence-keyed range.
    fn last_in_prefix(&self, t: Table, prefix: &[u8]) -> Result<Option<Row>, StoreError>;

    /// The bounded scan the others are made of: rows with `start <= key < end` (`end = None`:
    /// to the end of the table), ascending (descending with `q.reverse`), at most `q.limit`,
    /// stopping once `q.bytes_max` bytes of keys and values were read (at least one row is
    /// returned); with `q.keys_only` values come back empty (and do not count). Returns the
    /// rows and whether more were left.
    fn scan_bounded(
        &self,
        t: Table,
        start: &[u8],
        end: Option<&[u8]>,
        q: &Scan,
    ) -> Result<(Vec<Row>, bool), StoreError>;

    /// [`ReadView::scan_range`] that also stops at `bytes_max` bytes (at least one row).
    fn scan_range_bytes(
        &self,
        t: Table,
        start_inclusive: &[u8],
        end_exclusive: &[u8],
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<Row>, StoreError> {
        if range_empty(start_inclusive, end_exclusive) {
            return Ok(Vec::new());
        }
        let q = Scan { limit, bytes_max, ..Scan::default() };
        Ok(self.scan_bounded(t, start_inclusive, Some(end_exclusive), &q)?.0)
    }

    /// Rows of a prefix under a byte budget: (rows, whether more were left).
    fn scan_prefix_bounded(
        &self,
        t: Table,
        prefix: &[u8],
        q: &Scan,
    ) -> Result<(Vec<Row>, bool), StoreError> {
        let end = schema::prefix_end(prefix);
        self.scan_bounded(t, prefix, end.as_deref(), q)
    }

    /// A u64 BE Meta value, or `None` if it was never written.
    fn meta_u64(&self, key: &'static [u8]) -> Result<Option<u64>, StoreError> {
        match self.get(Table::Meta, key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(u64::from_be_bytes(meta_array(key, &bytes)?))),
        }
    }

    /// The log this store materializes: (log-store identity, log id), once stamped.
    fn log_identity(&self) -> Result<Option<(u64, u32)>, StoreError> {
        match self.get(Table::Meta, schema::META_LOG_IDENTITY)? {
            None => Ok(None),
            Some(bytes) => {
                let a: [u8; 12] = meta_array(schema::META_LOG_IDENTITY, &bytes)?;
                let mut store = [0u8; 8];
                store.copy_from_slice(&a[..8]);
                let mut log = [0u8; 4];
                log.copy_from_slice(&a[8..]);
                Ok(Some((u64::from_be_bytes(store), u32::from_be_bytes(log))))
            }
        }
    }

    /// The last log LSN whose effects are in this view; [`Lsn::INVALID`] for a new store.
    fn lsn_applied(&self) -> Result<Lsn, StoreError> {
        match self.get(Table::Meta, schema::META_LSN_APPLIED)? {
            None => Ok(Lsn::INVALID),
            Some(bytes) => {
                Ok(Lsn(u64::from_be_bytes(meta_array(schema::META_LSN_APPLIED, &bytes)?)))
            }
        }
    }
}

/// Writes of one atomic batch. Nothing is visible to others before the commit.
pub trait WriteView: ReadView {
    fn put(&mut self, t: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    /// Deleting a missing key is not an error.
    fn delete(&mut self, t: Table, key: &[u8]) -> Result<(), StoreError>;
    /// Deletes every row whose key starts with `prefix` (the whole table for an empty prefix).
    fn delete_prefix(&mut self, t: Table, prefix: &[u8]) -> Result<(), StoreError>;
    /// Deletes every row with `start_inclusive <= key < end_exclusive`.
    fn delete_range(
        &mut self,
        t: Table,
        start_inclusive: &[u8],
        end_exclusive: &[u8],
    ) -> Result<(), StoreError>;

    /// Records that the effects of every log record up to `lsn` are in this batch's view.
    /// Write it in the same transaction as those effects.
    fn set_lsn_applied(&mut self, lsn: Lsn) -> Result<(), StoreError> {
        self.put(Table::Meta, schema::META_LSN_APPLIED, &lsn.0.to_be_bytes())
    }

    fn set_meta_u64(&mut self, key: &'static [u8], value: u64) -> Result<(), StoreError> {
        self.put(Table::Meta, key, &value.to_be_bytes())
    }

    /// Stamps the log this store materializes; see [`ReadView::log_identity`].
    fn set_log_identity(&mut self, store_identity: u64, log_id: u32) -> Result<(), StoreError> {
        let mut v = Vec::with_capacity(12);
        v.extend_from_slice(&store_identity.to_be_bytes());
        v.extend_from_slice(&log_id.to_be_bytes());
        self.put(Table::Meta, schema::META_LOG_IDENTITY, &v)
    }
}

/// Tuning of one partition store.
#[derive(Clone, Debug)]
pub struct Options {
    /// redb's page cache and write buffer for this file. Bytes. redb's own default (1 GiB per
    /// file) is too much with one file per partition.
    pub cache_bytes_max: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options { cache_bytes_max: 64 * 1024 * 1024 }
    }
}

/// One partition's store: a redb database with every [`Table`] created. `Send + Sync`.
pub struct PartitionStore {
    db: Database,
    /// The file path, or `"memory"`, for error messages.
    origin: String,
}

impl fmt::Debug for PartitionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionStore").field("origin", &self.origin).finish()
    }
}

impl PartitionStore {
    /// Opens the store file at `path` (creating it and its tables if it does not exist) with
    /// default [`Options`].
    pub fn open(path: &Path) -> Result<PartitionStore, StoreError> {
        PartitionStore::open_with(path, &Options::default())
    }

    /// Opens the store file at `path`, creating it and its tables if needed. A file left by a
    /// crash is recovered to its last durable commit (see the module doc).
    pub fn open_with(path: &Path, options: &Options) -> Result<PartitionStore, StoreError> {
        let origin = path.display().to_string();
        let db = Database::builder()
            .set_cache_size(options.cache_bytes_max)
            .create(path)
            .map_err(|source| StoreError::Open { origin: origin.clone(), source })?;
        PartitionStore::init(db, origin)
    }

    /// A store in memory (redb's `InMemoryBackend`): nothing survives the value.
    pub fn open_in_memory() -> Result<PartitionStore, StoreError> {
        PartitionStore::open_backend(redb::backends::InMemoryBackend::new(), &Options::default())
    }

    /// Opens (or creates) a store on any redb backend, e.g. a [`sim::SimBackend`].
    pub fn open_backend(
        backend: impl StorageBackend,
        options: &Options,
    ) -> Result<PartitionStore, StoreError> {
        let origin = "memory".to_string();
        let db = Database::builder()
            .set_cache_size(options.cache_bytes_max)
            .create_with_backend(backend)
            .map_err(|source| StoreError::Open { origin: origin.clone(), source })?;
        PartitionStore::init(db, origin)
    }

    /// Checks the schema version (stamping it into a new file) and creates missing tables;
    /// commits durably only if something was created.
    fn init(db: Database, origin: String) -> Result<PartitionStore, StoreError> {
        let txn = db.begin_write().map_err(|source| StoreError::Begin { kind: "write", source })?;
        let existing: Vec<String> = txn
            .list_tables()
            .map_err(StoreError::ListTables)?
            .map(|handle| handle.name().to_string())
            .collect();
        let mut txn = WriteTxn { txn };
        let found = match txn.get(Table::Meta, schema::META_SCHEMA_VERSION)? {
            Some(bytes) => {
                Some(u32::from_be_bytes(meta_array(schema::META_SCHEMA_VERSION, &bytes)?))
            }
            None => None,
        };
        match found {
            Some(found) if found > schema::SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    origin,
                    found,
                    supported: schema::SCHEMA_VERSION,
                })
            }
            Some(found) if found < schema::SCHEMA_VERSION_MIN => {
                return Err(StoreError::SchemaTooOld {
                    origin,
                    found,
                    min_supported: schema::SCHEMA_VERSION_MIN,
                })
            }
            Some(_) => {}
            None if !existing.is_empty() => return Err(StoreError::NotAPartitionStore { origin }),
            None => txn.put(
                Table::Meta,
                schema::META_SCHEMA_VERSION,
                &schema::SCHEMA_VERSION.to_be_bytes(),
            )?,
        }
        let mut changed = found.is_none();
        for t in Table::ALL {
            if !existing.iter().any(|name| name == t.name()) {
                txn.table_mut(t, "create")?;
                changed = true;
            }
        }
        // A store from before the creation-time index gets it built from its statuses, once,
        // in the transaction that creates the table.
        if found.is_some() && !existing.iter().any(|name| name == Table::Created.name()) {
            backfill_created(&mut txn)?;
        }
        if changed {
            txn.commit(true)?;
        } else {
            txn.abort()?;
        }
        Ok(PartitionStore { db, origin })
    }

    /// Starts the single write transaction; blocks while another one is alive.
    pub fn begin_write(&self) -> Result<WriteTxn, StoreError> {
        let txn =
            self.db.begin_write().map_err(|source| StoreError::Begin { kind: "write", source })?;
        Ok(WriteTxn { txn })
    }

    /// A snapshot of the latest commit (durable or not). Holding it pins old pages.
    pub fn begin_read(&self) -> Result<ReadTxn, StoreError> {
        let txn =
            self.db.begin_read().map_err(|source| StoreError::Begin { kind: "read", source })?;
        Ok(ReadTxn { txn })
    }

    /// `lsn_applied` of the latest commit.
    pub fn lsn_applied(&self) -> Result<Lsn, StoreError> {
        self.begin_read()?.lsn_applied()
    }

    /// Closes the store, making pending non-durable commits durable, and reports any error
    /// (dropping does the same but can only ignore errors).
    pub fn close(self) -> Result<(), StoreError> {
        let PartitionStore { db, origin } = self;
        db.close().map_err(|source| StoreError::Close { origin, source })
    }
}

type RedbTable = TableDefinition<'static, &'static [u8], &'static [u8]>;

fn definition(t: Table) -> RedbTable {
    TableDefinition::new(t.name())
}

fn meta_array<const N: usize>(key: &'static [u8], bytes: &[u8]) -> Result<[u8; N], StoreError> {
    bytes.try_into().map_err(|_| StoreError::MetaCorrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        found_bytes: bytes.len(),
        expected_bytes: N,
    })
}

/// The `(lower, upper)` bounds of a prefix scan.
fn prefix_bounds(prefix: &[u8]) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let upper = match schema::prefix_end(prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    (Bound::Included(prefix.to_vec()), upper)
}

fn as_slices(bounds: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> (Bound<&[u8]>, Bound<&[u8]>) {
    (bounds.0.as_ref().map(Vec::as_slice), bounds.1.as_ref().map(Vec::as_slice))
}

fn collect_range<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    t: Table,
    op: &'static str,
    bounds: (Bound<&[u8]>, Bound<&[u8]>),
    limit: usize,
) -> Result<Vec<Row>, StoreError> {
    let storage = |source| StoreError::Storage { table: t, op, source };
    let mut rows = Vec::new();
    if limit == 0 {
        return Ok(rows);
    }
    for entry in table.range::<&[u8]>(bounds).map_err(storage)? {
        let (k, v) = entry.map_err(storage)?;
        rows.push((k.value().to_vec(), v.value().to_vec()));
        if rows.len() >= limit {
            break;
        }
    }
    Ok(rows)
}

/// Point read in an open table (read or write transaction alike).
fn table_get<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    t: Table,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let value =
        table.get(key).map_err(|source| StoreError::Storage { table: t, op: "get", source })?;
    Ok(value.map(|v| v.value().to_vec()))
}

fn table_scan_prefix<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    t: Table,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<Row>, StoreError> {
    let bounds = prefix_bounds(prefix);
    collect_range(table, t, "scan_prefix", as_slices(&bounds), limit)
}

fn table_scan_range<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    t: Table,
    start_inclusive: &[u8],
    end_exclusive: &[u8],
    limit: usize,
) -> Result<Vec<Row>, StoreError> {
    let bounds = (Bound::Included(start_inclusive), Bound::Excluded(end_exclusive));
    collect_range(table, t, "scan_range", bounds, limit)
}

fn table_last_in_prefix<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    t: Table,
    prefix: &[u8],
) -> Result<Option<Row>, StoreError> {
    let storage = |source| StoreError::Storage { table: t, op: "last_in_prefix", source };
    let bounds = prefix_bounds(prefix);
    let mut range = table.range::<&[u8]>(as_slices(&bounds)).map_err(storage)?;
    match range.next_back() {
        None => Ok(None),
        Some(entry) => {
            let (k, v) = entry.map_err(storage)?;
            Ok(Some((k.value().to_vec(), v.value().to_vec())))
        }
    }
}

fn table_scan_bounded<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    t: Table,
    start: &[u8],
    end: Option<&[u8]>,
    q: &Scan,
) -> Result<(Vec<Row>, bool), StoreError> {
    let storage = |source| StoreError::Storage { table: t, op: "scan_bounded", source };
    let mut rows = Vec::new();
    if q.limit == 0 || end.is_some_and(|e| range_empty(start, e)) {
        return Ok((rows, false));
    }
    let bounds = (Bound::Included(start), end.map_or(Bound::Unbounded, Bound::Excluded));
    let mut range = table.range::<&[u8]>(bounds).map_err(storage)?;
    let mut bytes = 0usize;
    loop {
        let next = if q.reverse { range.next_back() } else { range.next() };
        let Some(entry) = next else { return Ok((rows, false)) };
        if rows.len() >= q.limit || (!rows.is_empty() && bytes >= q.bytes_max) {
            return Ok((rows, true));
        }
        let (k, v) = entry.map_err(storage)?;
        let key = k.value().to_vec();
        let value = if q.keys_only { Vec::new() } else { v.value().to_vec() };
        bytes = bytes.saturating_add(key.len() + value.len());
        rows.push((key, value));
    }
}

/// Whether `[start, end)` is empty.
fn range_empty(start: &[u8], end: &[u8]) -> bool {
    start >= end
}

/// A snapshot: sees exactly the commits made before it began.
#[derive(Debug)]
pub struct ReadTxn {
    txn: redb::ReadTransaction,
}

impl ReadTxn {
    fn table(
        &self,
        t: Table,
        op: &'static str,
    ) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, StoreError> {
        self.txn.open_table(definition(t)).map_err(|source| StoreError::OpenTable {
            table: t,
            op,
            source,
        })
    }
}

impl ReadTxn {
    /// The values of `keys` in `t`, in order, opening the table once (point lookups in a
    /// loop would open it for each).
    pub fn get_many(&self, t: Table, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let table = self.table(t, "get")?;
        keys.iter().map(|k| table_get(&table, t, k)).collect()
    }
}

impl ReadView for ReadTxn {
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        table_get(&self.table(t, "get")?, t, key)
    }

    fn last_in_prefix(&self, t: Table, prefix: &[u8]) -> Result<Option<Row>, StoreError> {
        table_last_in_prefix(&self.table(t, "last_in_prefix")?, t, prefix)
    }

    fn scan_bounded(
        &self,
        t: Table,
        start: &[u8],
        end: Option<&[u8]>,
        q: &Scan,
    ) -> Result<(Vec<Row>, bool), StoreError> {
        table_scan_bounded(&self.table(t, "scan_bounded")?, t, start, end, q)
    }

    fn scan_prefix(&self, t: Table, prefix: &[u8], limit: usize) -> Result<Vec<Row>, StoreError> {
        table_scan_prefix(&self.table(t, "scan_prefix")?, t, prefix, limit)
    }

    fn scan_range(
        &self,
        t: Table,
        start_inclusive: &[u8],
        end_exclusive: &[u8],
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        if range_empty(start_inclusive, end_exclusive) {
            return Ok(Vec::new());
        }
        table_scan_range(&self.table(t, "scan_range")?, t, start_inclusive, end_exclusive, limit)
    }
}

/// One atomic batch across tables; sees its own writes. Dropping it without
/// [`WriteTxn::commit`] discards it.
pub struct WriteTxn {
    txn: redb::WriteTransaction,
}

impl fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTxn").finish_non_exhaustive()
    }
}

impl WriteTxn {
    /// Commits the batch. `durable = false`: redb `Durability::None` (visible to every later
    /// transaction, lost on a crash unless a durable commit follows). `durable = true`: redb
    /// `Durability::Immediate` with quick repair (fsync before returning; this commit and
    /// every non-durable one before it survive a crash). An error is final: see the
    /// fail-stop invariant in the module doc.
    pub fn commit(self, durable: bool) -> Result<(), StoreError> {
        let mut txn = self.txn;
        if durable {
            txn.set_durability(Durability::Immediate).map_err(StoreError::Durability)?;
            // One more fsync per checkpoint, in exchange for a recovery that does not walk
            // the whole file after a crash.
            txn.set_quick_repair(true);
        } else {
            txn.set_durability(Durability::None).map_err(StoreError::Durability)?;
        }
        txn.commit().map_err(|source| StoreError::Commit { durable, source })
    }

    /// Discards the batch (as dropping does), reporting any error.
    pub fn abort(self) -> Result<(), StoreError> {
        self.txn.abort().map_err(StoreError::Abort)
    }

    fn table_mut(
        &self,
        t: Table,
        op: &'static str,
    ) -> Result<redb::Table<'_, &'static [u8], &'static [u8]>, StoreError> {
        self.txn.open_table(definition(t)).map_err(|source| StoreError::OpenTable {
            table: t,
            op,
            source,
        })
    }
}

impl ReadView for WriteTxn {
    fn get(&self, t: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        table_get(&self.table_mut(t, "get")?, t, key)
    }

    fn last_in_prefix(&self, t: Table, prefix: &[u8]) -> Result<Option<Row>, StoreError> {
        table_last_in_prefix(&self.table_mut(t, "last_in_prefix")?, t, prefix)
    }

    fn scan_bounded(
        &self,
        t: Table,
        start: &[u8],
        end: Option<&[u8]>,
        q: &Scan,
    ) -> Result<(Vec<Row>, bool), StoreError> {
        table_scan_bounded(&self.table_mut(t, "scan_bounded")?, t, start, end, q)
    }

    fn scan_prefix(&self, t: Table, prefix: &[u8], limit: usize) -> Result<Vec<Row>, StoreError> {
        table_scan_prefix(&self.table_mut(t, "scan_prefix")?, t, prefix, limit)
    }

    fn scan_range(
        &self,
        t: Table,
        start_inclusive: &[u8],
        end_exclusive: &[u8],
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        if range_empty(start_inclusive, end_exclusive) {
            return Ok(Vec::new());
        }
        table_scan_range(
            &self.table_mut(t, "scan_range")?,
            t,
            start_inclusive,
            end_exclusive,
            limit,
        )
    }
}

impl WriteView for WriteTxn {
    fn put(&mut self, t: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if key.len() > KEY_BYTES_MAX {
            return Err(StoreError::KeyTooLarge {
                table: t,
                bytes: key.len(),
                limit_bytes: KEY_BYTES_MAX,
            });
        }
        if value.len() > VALUE_BYTES_MAX {
            return Err(StoreError::ValueTooLarge {
                table: t,
                bytes: value.len(),
                limit_bytes: VALUE_BYTES_MAX,
            });
        }
        let mut table = self.table_mut(t, "put")?;
        table.insert(key, value).map_err(|source| StoreError::Storage {
            table: t,
            op: "put",
            source,
        })?;
        Ok(())
    }

    fn delete(&mut self, t: Table, key: &[u8]) -> Result<(), StoreError> {
        let mut table = self.table_mut(t, "delete")?;
        table.remove(key).map_err(|source| StoreError::Storage {
            table: t,
            op: "delete",
            source,
        })?;
        Ok(())
    }

    fn delete_prefix(&mut self, t: Table, prefix: &[u8]) -> Result<(), StoreError> {
        let mut table = self.table_mut(t, "delete_prefix")?;
        let bounds = prefix_bounds(prefix);
        table
            .retain_in::<&[u8], _>(as_slices(&bounds), |_, _| false)
            .map_err(|source| StoreError::Storage { table: t, op: "delete_prefix", source })
    }

    fn delete_range(
        &mut self,
        t: Table,
        start_inclusive: &[u8],
        end_exclusive: &[u8],
    ) -> Result<(), StoreError> {
        if range_empty(start_inclusive, end_exclusive) {
            return Ok(());
        }
        let mut table = self.table_mut(t, "delete_range")?;
        table
            .retain_in::<&[u8], _>(
                (Bound::Included(start_inclusive), Bound::Excluded(end_exclusive)),
                |_, _| false,
            )
            .map_err(|source| StoreError::Storage { table: t, op: "delete_range", source })
    }
}

/// Fills [`Table::Created`] from every stored status (a store written before the index).
fn backfill_created(txn: &mut WriteTxn) -> Result<(), StoreError> {
    use prost::Message;
    let end = [0xFFu8; schema::INVOCATION_ID_BYTES + 1];
    let mut start: Vec<u8> = Vec::new();
    loop {
        let rows = txn.scan_range(Table::InvocationStatus, &start, &end, 4096)?;
        for (k, v) in &rows {
            let raw = schema::decode_invocation_status_key(k)?;
            let st = crate::fsm::Status::decode(v.as_slice()).map_err(|e| StoreError::Corrupt {
                table: Table::InvocationStatus,
                detail: e.to_string(),
            })?;
            txn.put(Table::Created, &schema::created_key(st.created_ms, &raw), &[])?;
        }
        match rows.last() {
            Some((k, _)) if rows.len() == 4096 => start = schema::key_after(k),
            _ => return Ok(()),
        }
    }
}
