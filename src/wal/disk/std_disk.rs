//! Portable backend: `pwrite` + `fdatasync` on ordinary buffered files.
//!
//! Submissions queue up to [`StdDisk::INFLIGHT_MAX`]; `complete` writes every queued buffer and
//! then issues one `fdatasync` per distinct file, so a queue of several flushes costs one sync.
//! This is the fallback when io_uring is unavailable, and the reference the io_uring backend
//! must at least match.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Completion, Disk, DiskRead, FileId, IoBuf, Submission};

#[derive(Debug)]
pub struct StdDisk {
    dir: PathBuf,
    dir_file: File,
    files: HashMap<FileId, (String, File)>,
    next_file: u32,
    queue: VecDeque<Submission>,
    reader: Arc<StdReader>,
}

impl StdDisk {
    pub const INFLIGHT_MAX: usize = 4;

    pub fn open(dir: &Path) -> io::Result<StdDisk> {
        std::fs::create_dir_all(dir)?;
        let dir_file = File::open(dir)?;
        Ok(StdDisk {
            dir: dir.to_path_buf(),
            dir_file,
            files: HashMap::new(),
            next_file: 1,
            queue: VecDeque::new(),
            reader: Arc::new(StdReader { dir: dir.to_path_buf(), files: Mutex::default() }),
        })
    }

    fn file(&self, id: FileId) -> io::Result<&File> {
        self.files
            .get(&id)
            .map(|(_, f)| f)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "file id not open"))
    }
}

/// Checks a name stays inside the directory: WAL file names are ours, never user input, but a
/// slip here would write outside the data directory.
pub(crate) fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad file name {name:?}")));
    }
    Ok(())
}

impl Disk for StdDisk {
    fn engine(&self) -> &'static str {
        "std"
    }
    fn needs_aligned_writes(&self) -> bool {
        false
    }
    fn inflight_max(&self) -> usize {
        Self::INFLIGHT_MAX
    }
    fn register_buffers(&mut self, _bufs: &mut [IoBuf]) -> io::Result<()> {
        Ok(())
    }
    fn list(&mut self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }
    fn open(&mut self, name: &str, create: bool) -> io::Result<FileId> {
        check_name(name)?;
        let path = self.dir.join(name);
        let existed = path.exists();
        let file = OpenOptions::new().read(true).write(true).create(create).open(&path)?;
        if !existed {
            self.dir_file.sync_all()?;
        }
        let id = FileId(self.next_file);
        self.next_file += 1;
        self.files.insert(id, (name.to_string(), file));
        Ok(id)
    }
    fn close(&mut self, file: FileId) {
        self.files.remove(&file);
    }
    fn file_len(&mut self, file: FileId) -> io::Result<u64> {
        Ok(self.file(file)?.metadata()?.len())
    }
    fn read_at(&mut self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        read_full_at(self.file(file)?, offset, buf)
    }
    fn write_sync(&mut self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        let f = self.file(file)?;
        f.write_all_at(data, offset)?;
        f.sync_data()
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        std::fs::rename(self.dir.join(from), self.dir.join(to))?;
        self.reader.forget(from);
        self.reader.forget(to);
        self.dir_file.sync_all()
    }
    fn remove(&mut self, name: &str) -> io::Result<()> {
        check_name(name)?;
        std::fs::remove_file(self.dir.join(name))?;
        self.reader.forget(name);
        self.dir_file.sync_all()
    }
    fn submit(&mut self, sub: Submission) -> io::Result<()> {
        if self.queue.len() >= Self::INFLIGHT_MAX {
            return Err(io::Error::other("std disk: too many submissions in flight"));
        }
        self.queue.push_back(sub);
        Ok(())
    }
    fn complete(&mut self, _min: usize, out: &mut Vec<Completion>) -> io::Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        let mut results: Vec<io::Result<()>> = Vec::with_capacity(self.queue.len());
        let mut synced: Vec<FileId> = Vec::new();
        for sub in &self.queue {
            let r = self.file(sub.file).and_then(|f| f.write_all_at(&sub.buf, sub.offset));
            results.push(r);
            if !synced.contains(&sub.file) {
                synced.push(sub.file);
            }
        }
        // One fdatasync per file covers every write queued to it.
        let mut sync_results: HashMap<FileId, Option<io::ErrorKind>> = HashMap::new();
        for id in synced {
            let r = self.file(id).and_then(|f| f.sync_data());
            sync_results.insert(id, r.err().map(|e| e.kind()));
        }
        for (sub, r) in self.queue.drain(..).zip(results) {
            let result = match (r, sync_results.get(&sub.file).copied().flatten()) {
                (Err(e), _) => Err(e),
                (Ok(()), Some(kind)) => Err(io::Error::new(kind, "fdatasync failed")),
                (Ok(()), None) => Ok(()),
            };
            out.push(Completion { user_data: sub.user_data, buf: sub.buf, result });
        }
        Ok(())
    }
    fn reader(&self) -> Arc<dyn DiskRead> {
        self.reader.clone()
    }
}

/// Reads until `buf` is full or the file ends.
pub(crate) fn read_full_at(f: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads WAL files by name with cached buffered handles.
#[derive(Debug)]
pub struct StdReader {
    dir: PathBuf,
    files: Mutex<HashMap<String, Arc<File>>>,
}

impl StdReader {
    pub fn new(dir: &Path) -> StdReader {
        StdReader { dir: dir.to_path_buf(), files: Mutex::default() }
    }
}

impl DiskRead for StdReader {
    fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        check_name(name)?;
        let file = {
            let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            match files.get(name) {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(File::open(self.dir.join(name))?);
                    files.insert(name.to_string(), f.clone());
                    f
                }
            }
        };
        read_full_at(&file, offset, buf)
    }
    fn forget(&self, name: &str) {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }
}
