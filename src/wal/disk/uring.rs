//! io_uring backend (being written).
use std::io;
use std::path::Path;

#[derive(Debug)]
pub struct UringDisk;

impl UringDisk {
    pub fn open(_dir: &Path) -> io::Result<super::std_disk::StdDisk> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "not yet"))
    }
}
