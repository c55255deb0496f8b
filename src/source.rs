//! Everything compiling a configuration reads from the machine: files, environment variables,
//! DNS and the clock, behind one trait, so the compiler is a pure function of the YAML and a
//! [`Source`]. Production uses [`System`]; unit tests use [`Memory`] and need no files or
//! network.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// What the compiler may read.
pub trait Source: Send + Sync {
    /// The bytes of the file at `path` (already resolved against the config's directory).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// An environment variable; `None` when unset or not UTF-8.
    fn var(&self, name: &str) -> Option<String>;
    /// The addresses of `host:port`.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
    /// Seconds since the epoch (certificate expiry warnings).
    fn now(&self) -> i64;
}

/// The real machine: `std::fs`, `std::env`, the system resolver, the wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct System;

impl Source for System {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }

    fn now(&self) -> i64 {
        crate::clock::unix_now()
    }
}

/// A machine described in memory, for tests: files by path, variables, host addresses and a
/// fixed time. Anything not described does not exist.
#[derive(Debug, Default, Clone)]
pub struct Memory {
    files: HashMap<PathBuf, Vec<u8>>,
    vars: HashMap<String, String>,
    hosts: HashMap<String, Vec<std::net::IpAddr>>,
    now: i64,
}

impl Memory {
    pub fn new(now: i64) -> Memory {
        Memory {
            now,
            ..Memory::default()
        }
    }

    pub fn file(mut self, path: impl Into<PathBuf>, content: impl Into<Vec<u8>>) -> Memory {
        self.files.insert(path.into(), content.into());
        self
    }

    pub fn var(mut self, name: &str, value: &str) -> Memory {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn host(mut self, name: &str, addresses: &[std::net::IpAddr]) -> Memory {
        self.hosts.insert(name.to_owned(), addresses.to_vec());
        self
    }
}

impl Source for Memory {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        match self.hosts.get(host) {
            Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "failed to lookup address information: Name or service not known",
            )),
        }
    }

    fn now(&self) -> i64 {
        self.now
    }
}
