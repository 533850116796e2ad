//! A TCP proxy in front of one node that the test can cut and heal, per source address.
//!
//! Nodes listen and dial from distinct loopback addresses (127.0.0.x), so the proxy knows
//! which node a connection comes from and can partition exactly the pairs the test asks for.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct State {
    target: Option<SocketAddr>,
    blocked: HashSet<IpAddr>,
    connections: Vec<(IpAddr, TcpStream, TcpStream)>,
}

/// A running proxy; stops accepting when dropped.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Listen on `bind` (port 0); connections are refused until [`forward_to`](Self::forward_to).
    pub(crate) fn start(bind: IpAddr) -> Proxy {
        let listener = TcpListener::bind((bind, 0)).expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let state = Arc::new(Mutex::new(State {
            target: None,
            blocked: HashSet::new(),
            connections: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, from)) => {
                        let _ = client.set_nonblocking(false);
                        let target = {
                            let state = st.lock().unwrap();
                            if state.blocked.contains(&from.ip()) {
                                None
                            } else {
                                state.target
                            }
                        };
                        let Some(target) = target else {
                            drop(client);
                            continue;
                        };
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        let _ = server.set_nodelay(true);
                        let _ = client.set_nodelay(true);
                        pump(&client, &server);
                        pump(&server, &client);
                        st.lock()
                            .unwrap()
                            .connections
                            .push((from.ip(), client, server));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { addr, state, stop }
    }

    /// Where accepted connections go.
    pub(crate) fn forward_to(&self, target: &str) {
        self.state.lock().unwrap().target = Some(target.parse().expect("target address"));
    }

    /// Cut every connection from `source` and refuse new ones.
    pub(crate) fn block(&self, source: IpAddr) {
        let mut state = self.state.lock().unwrap();
        state.blocked.insert(source);
        state.connections.retain(|(from, a, b)| {
            if *from == source {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
                false
            } else {
                true
            }
        });
    }

    /// Accept connections from every source again.
    pub(crate) fn heal(&self) {
        self.state.lock().unwrap().blocked.clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for (_, a, b) in self.state.lock().unwrap().connections.drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

fn pump(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
