//! A tiny HTTP/1.1 server on 127.0.0.1 for the fetch tests: each path has a queue of scripted
//! replies (the last one repeats), and every request is recorded (request target and headers),
//! so tests can see retries, redirects, the User-Agent and whether a proxy was used.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response with this status and body.
    Body { status: u16, body: Vec<u8> },
    /// A 200 whose body is sent without `Content-Length`, ended by closing the connection.
    BodyUntilClose(Vec<u8>),
    /// A 200 announcing `declared` bytes but closing after sending `body`.
    Truncated { declared: u64, body: Vec<u8> },
    /// A 200 with `len` bytes of [`pattern_byte`] generated while sending (nothing buffered).
    Generated { len: u64 },
    /// A redirect to `location`.
    Redirect { status: u16, location: String },
}

impl Reply {
    pub fn ok(body: &[u8]) -> Self {
        Self::Body {
            status: 200,
            body: body.to_vec(),
        }
    }

    pub fn status(status: u16) -> Self {
        Self::Body {
            status,
            body: format!("status {status}\n").into_bytes(),
        }
    }
}

/// The byte at `offset` of a generated body.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(2654435761) >> 13) as u8
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The request target as sent: a path, or an absolute URL when sent to a proxy.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

#[derive(Default)]
struct State {
    routes: HashMap<String, VecDeque<Reply>>,
    requests: Vec<RecordedRequest>,
}

pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                thread::spawn(move || serve(stream, &shared));
            }
        });
        Self { addr, state }
    }

    /// Scripts the replies for `path` (the last one repeats).
    pub fn route(&self, path: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), replies.into());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// How many requests named `path` (as a path or at the end of an absolute URL).
    pub fn hits(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|request| request.target == path || request.target.ends_with(path))
            .count()
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            headers.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let path = match target.strip_prefix("http://") {
        Some(rest) => rest
            .find('/')
            .map_or("/".to_owned(), |at| rest[at..].to_owned()),
        None => target.clone(),
    };
    let reply = {
        let mut state = state.lock().unwrap();
        state.requests.push(RecordedRequest {
            target: target.clone(),
            headers,
        });
        match state.routes.get_mut(&path) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        }
        .unwrap_or_else(|| Reply::status(404))
    };
    let _ = respond(stream, reply);
}

fn respond(mut stream: TcpStream, reply: Reply) -> std::io::Result<()> {
    match reply {
        Reply::Body { status, body } => {
            write!(
                stream,
                "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        Reply::BodyUntilClose(body) => {
            write!(stream, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            stream.write_all(&body)?;
        }
        Reply::Truncated { declared, body } => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n"
            )?;
            stream.write_all(&body)?;
        }
        Reply::Generated { len } => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            )?;
            let mut chunk = vec![0u8; 64 * 1024];
            let mut offset = 0u64;
            while offset < len {
                let n = chunk.len().min((len - offset) as usize);
                for (i, byte) in chunk[..n].iter_mut().enumerate() {
                    *byte = pattern_byte(offset + i as u64);
                }
                stream.write_all(&chunk[..n])?;
                offset += n as u64;
            }
        }
        Reply::Redirect { status, location } => {
            write!(
                stream,
                "HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
        }
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}
