//! Watching how far `berth load` has read into an archive, for its progress bars: a
//! [`Source`] decorator that reports every read of every file to a [`Watch`].

use std::io::Read;

use super::archive::Source;
use super::ImageError;

/// Told about each file of an archive as it is read.
pub trait Watch {
    /// File `path` (`size` bytes) is being read: the returned callback gets the count of
    /// each read, and is dropped when the file is done with.
    fn reading(&self, path: &str, size: u64) -> Box<dyn FnMut(u64) + '_>;
}

/// Watches nothing.
pub struct Unwatched;

impl Watch for Unwatched {
    fn reading(&self, _path: &str, _size: u64) -> Box<dyn FnMut(u64) + '_> {
        Box::new(|_| {})
    }
}

/// `inner`, with every read reported to `watch`.
pub(crate) struct Watched<'a> {
    pub inner: &'a dyn Source,
    pub watch: &'a dyn Watch,
}

impl Source for Watched<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn exists(&self, path: &str) -> bool {
        self.inner.exists(path)
    }

    fn open(&self, path: &str) -> Result<(Box<dyn Read + '_>, u64), ImageError> {
        let (inner, size) = self.inner.open(path)?;
        let report = self.watch.reading(path, size);
        Ok((Box::new(Counting { inner, report }), size))
    }
}

struct Counting<'a> {
    inner: Box<dyn Read + 'a>,
    report: Box<dyn FnMut(u64) + 'a>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.report)(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::archive::DirSource;
    use std::cell::RefCell;

    /// Records (path, size, bytes reported) per file.
    #[derive(Default)]
    struct Recorder(RefCell<Vec<(String, u64, u64)>>);

    impl Watch for Recorder {
        fn reading(&self, path: &str, size: u64) -> Box<dyn FnMut(u64) + '_> {
            let i = {
                let mut files = self.0.borrow_mut();
                files.push((path.to_string(), size, 0));
                files.len() - 1
            };
            Box::new(move |n| self.0.borrow_mut()[i].2 += n)
        }
    }

    #[test]
    fn every_byte_read_is_reported_against_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("layer.tar"), vec![7u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("small.json"), b"{}").unwrap();
        let source = DirSource::new(dir.path(), "test");
        let recorder = Recorder::default();
        let watched = Watched {
            inner: &source,
            watch: &recorder,
        };
        let (mut layer, size) = watched.open("layer.tar").unwrap();
        let mut sink = Vec::new();
        layer.read_to_end(&mut sink).unwrap();
        drop(layer);
        assert_eq!(watched.read_small("small.json").unwrap(), b"{}");
        assert_eq!(size, 100_000);
        assert_eq!(
            *recorder.0.borrow(),
            vec![
                ("layer.tar".to_string(), 100_000, 100_000),
                ("small.json".to_string(), 2, 2)
            ]
        );
    }
}
