//! A TCP relay on 127.0.0.1 between the client and the test sshd, which
//! can freeze a connection (nothing passes either way, as when Wi-Fi dies:
//! no FIN, no RST, writes pile up until they block), let it go again, cut
//! it, or hold it to a trickle. Never the machine's firewall.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::handoff::World;

/// One relayed connection.
#[derive(Default)]
struct Link {
    /// Bytes from the client so far.
    up: AtomicU64,
    /// Freeze once `up` reaches this (0: never).
    freeze_at: AtomicU64,
    frozen: AtomicBool,
    cut: AtomicBool,
    /// Bytes per second each way (0: as fast as it goes).
    rate: AtomicU64,
}

#[derive(Default)]
struct Shared {
    /// Armed for the next connection: freeze it after this many bytes from the client.
    freeze_after: Mutex<Option<u64>>,
    /// Every connection gets this rate (0: unlimited).
    rate: AtomicU64,
    links: Mutex<Vec<Arc<Link>>>,
}

pub struct Relay {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Relay {
    /// Relay 127.0.0.1:<port> to 127.0.0.1:`target`.
    pub fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let state = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let link = Arc::new(Link::default());
                if let Some(after) = state.freeze_after.lock().unwrap().take() {
                    link.freeze_at.store(after.max(1), Ordering::SeqCst);
                }
                link.rate.store(state.rate.load(Ordering::SeqCst), Ordering::SeqCst);
                state.links.lock().unwrap().push(Arc::clone(&link));
                for (from, to, up) in
                    [(client.try_clone().unwrap(), server.try_clone().unwrap(), true), (server, client, false)]
                {
                    let link = Arc::clone(&link);
                    std::thread::spawn(move || pump(from, to, &link, up));
                }
            }
        });
        Relay { port, shared }
    }

    /// The next connection freezes once `bytes` came from the client (the rest held back).
    pub fn freeze_after(&self, bytes: u64) {
        *self.shared.freeze_after.lock().unwrap() = Some(bytes);
    }

    /// Connections from now on carry at most `bytes_per_second` each way.
    pub fn throttle(&self, bytes_per_second: u64) {
        self.shared.rate.store(bytes_per_second, Ordering::SeqCst);
    }

    /// Wait (at most `limit`) until a connection froze.
    pub fn wait_frozen(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.shared.links.lock().unwrap().iter().any(|l| l.frozen.load(Ordering::SeqCst)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Let every frozen connection go on (what was held back goes first).
    pub fn thaw(&self) {
        for link in self.shared.links.lock().unwrap().iter() {
            link.frozen.store(false, Ordering::SeqCst);
        }
    }

    /// Bytes from the client on each connection so far, and whether it is frozen.
    pub fn report(&self) -> Vec<(u64, bool)> {
        let links = self.shared.links.lock().unwrap();
        links.iter().map(|l| (l.up.load(Ordering::SeqCst), l.frozen.load(Ordering::SeqCst))).collect()
    }

    /// Connections so far.
    pub fn connections(&self) -> usize {
        self.shared.links.lock().unwrap().len()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for link in self.shared.links.lock().unwrap().iter() {
            link.cut.store(true, Ordering::SeqCst);
            link.frozen.store(false, Ordering::SeqCst);
        }
    }
}

/// Copy `from` to `to` as the link's state allows.
fn pump(mut from: TcpStream, mut to: TcpStream, link: &Link, up: bool) {
    from.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut held: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = |from: &TcpStream, to: &TcpStream| {
        let _ = to.shutdown(Shutdown::Write);
        let _ = from.shutdown(Shutdown::Read);
    };
    loop {
        if link.cut.load(Ordering::SeqCst) {
            let _ = from.shutdown(Shutdown::Both);
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
        if link.frozen.load(Ordering::SeqCst) {
            // Nothing read, nothing written: the sender's buffers fill and its writes block.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        if !held.is_empty() {
            if to.write_all(&held).is_err() {
                return end(&from, &to);
            }
            held.clear();
        }
        let rate = link.rate.load(Ordering::SeqCst);
        let chunk = if rate == 0 { buf.len() } else { (rate as usize / 50).clamp(1, buf.len()) };
        let n = match from.read(&mut buf[..chunk]) {
            Ok(0) => return end(&from, &to),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                continue
            }
            Err(_) => return end(&from, &to),
        };
        let mut data = &buf[..n];
        if up {
            let before = link.up.fetch_add(n as u64, Ordering::SeqCst);
            let at = link.freeze_at.load(Ordering::SeqCst);
            if at != 0 && before + n as u64 >= at {
                let pass = (at.saturating_sub(before) as usize).min(n);
                held.extend_from_slice(&data[pass..]);
                data = &data[..pass];
                link.freeze_at.store(0, Ordering::SeqCst);
                link.frozen.store(true, Ordering::SeqCst);
            }
        }
        if to.write_all(data).is_err() {
            return end(&from, &to);
        }
        if rate != 0 {
            std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
        }
    }
}

/// Send the world's ssh connections to devbox through a new relay: the
/// client config's port becomes the relay's, whose address known_hosts
/// learns with the same host key.
pub fn route_through(w: &World) -> Relay {
    let sshd = w.sshd.as_ref().expect("a world with an sshd");
    let relay = Relay::start(sshd.port());
    let known = sshd.dir().join("known_hosts");
    let mut text = std::fs::read_to_string(&known).unwrap();
    let key = text.lines().next().unwrap().split_once(' ').unwrap().1.to_owned();
    text.push_str(&format!("[127.0.0.1]:{} {key}\n", relay.port));
    std::fs::write(&known, text).unwrap();
    let config = w.env.home.join(".ssh/config");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(&format!("\tPort {}\n", sshd.port()), &format!("\tPort {}\n", relay.port));
    std::fs::write(&config, text).unwrap();
    relay
}
