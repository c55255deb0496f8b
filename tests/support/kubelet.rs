//! A ConfigMap or Secret volume laid out the way kubelet writes it: each file is a symlink
//! `<dir>/<name> -> ..data/<name>`, `..data` is a symlink to a timestamped directory, and an
//! update writes a new directory, then renames a fresh `..data` symlink over the old one (one
//! atomic `rename(2)`). Files the gateway opened keep their old inode: only re-reading the path
//! sees the new content.

use std::path::{Path, PathBuf};

pub struct Volume {
    dir: tempfile::TempDir,
    version: u32,
}

impl Volume {
    /// A volume holding `files` (name, content).
    pub fn new(files: &[(&str, &[u8])]) -> Volume {
        let mut volume = Volume {
            dir: tempfile::tempdir().unwrap(),
            version: 0,
        };
        volume.publish(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.path(name)).unwrap();
        }
        volume
    }

    /// The path a container reads `name` at.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The content `name` has now.
    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// Publish a new version of the volume, as kubelet does: every file of the volume, in a new
    /// directory, then the `..data` swap.
    pub fn publish(&mut self, files: &[(&str, &[u8])]) {
        self.version += 1;
        let version = format!("..2026_11_30_00_00_{:02}.{}", self.version, self.version);
        let target = self.dir.path().join(&version);
        std::fs::create_dir(&target).unwrap();
        for (name, content) in files {
            std::fs::write(target.join(name), content).unwrap();
        }
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
    }
}
