//! A small blocking ZooKeeper client over `std::net::TcpStream`.
//!
//! For tools and tests, not for applications: `ckctl`, `ckbench` and the server's
//! integration tests use it to speak the real protocol to corekeeper and to Apache
//! ZooKeeper alike. It pipelines: [`Client::send`] queues a request and returns its
//! xid, [`Client::recv`] returns the next reply or watch event. Replies must come back
//! in request order (ZooKeeper's rule); one that does not is an error, as it is for
//! the C client.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::jute::connect::{ConnectRequest, ConnectResponse};
use crate::jute::frame::{FrameBuffer, FrameDecoder};
use crate::jute::header::{ReplyHeader, op_for_special_xid};
use crate::jute::records::*;
use crate::jute::request::Request;
use crate::jute::response::Response;
use crate::jute::{Acl, CreateMode, ErrorCode, OpCode, Stat, xid};

/// Requests the client lets be outstanding before `send` refuses.
pub const CLIENT_PENDING_MAX: usize = 65_536;
/// Longest wait for the server's answer to the handshake.
pub const CLIENT_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Largest reply frame accepted (ZooKeeper's default `jute.maxbuffer`, plus headers).
pub const CLIENT_FRAME_BYTES_MAX: usize = (1 << 20) + 1024;

/// What arrived from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Reply {
        header: ReplyHeader,
        response: Response,
    },
    Event(WatcherEvent),
}

/// An open session.
pub struct Client {
    stream: TcpStream,
    buf: FrameBuffer,
    wbuf: Vec<u8>,
    next_xid: i32,
    pending: VecDeque<(i32, OpCode)>,
    session: ConnectResponse,
    last_zxid: i64,
}

fn proto(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// A ZooKeeper error reply, as an `io::Error` whose message names the code.
pub fn keeper_error(err: i32) -> io::Error {
    let name =
        ErrorCode::from_code(err).map_or_else(|| format!("error {err}"), |c| format!("{c:?}"));
    io::Error::other(format!("ZooKeeper error {name} ({err})"))
}

impl Client {
    /// Opens a new session with the requested timeout.
    pub fn connect(addr: impl ToSocketAddrs, timeout_ms: i32) -> io::Result<Client> {
        let req = ConnectRequest {
            time_out: timeout_ms,
            passwd: Some(vec![0; 16]),
            read_only: Some(false),
            ..Default::default()
        };
        Client::handshake(addr, req)
    }

    /// Reattaches to `session_id` with its password.
    pub fn reconnect(
        addr: impl ToSocketAddrs,
        session_id: i64,
        passwd: &[u8],
        timeout_ms: i32,
        last_zxid: i64,
    ) -> io::Result<Client> {
        let req = ConnectRequest {
            time_out: timeout_ms,
            session_id,
            passwd: Some(passwd.to_vec()),
            last_zxid_seen: last_zxid,
            read_only: Some(false),
            ..Default::default()
        };
        Client::handshake(addr, req)
    }

    fn handshake(addr: impl ToSocketAddrs, req: ConnectRequest) -> io::Result<Client> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        let stream = TcpStream::connect(&addrs[..])?;
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            buf: FrameBuffer::new(FrameDecoder::new(CLIENT_FRAME_BYTES_MAX)),
            wbuf: Vec::new(),
            next_xid: 1,
            pending: VecDeque::new(),
            session: ConnectResponse::default(),
            last_zxid: req.last_zxid_seen,
        };
        req.encode_frame(&mut c.wbuf);
        c.stream.write_all(&c.wbuf)?;
        c.wbuf.clear();
        // A server that accepts but never answers must not hang the caller.
        c.stream
            .set_read_timeout(Some(Duration::from_millis(CLIENT_HANDSHAKE_TIMEOUT_MS)))?;
        let body = c.read_frame()?;
        c.stream.set_read_timeout(None)?;
        let resp = ConnectResponse::decode(&body).map_err(proto)?;
        if resp.time_out <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "session expired or refused by the server",
            ));
        }
        c.session = resp;
        Ok(c)
    }

    /// Bounds how long writing requests (`flush`, `recv`) may block.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(t)
    }

    /// Bounds how long a `recv` may block.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(t)
    }

    pub fn session_id(&self) -> i64 {
        self.session.session_id
    }
    pub fn password(&self) -> Vec<u8> {
        self.session.passwd.clone().unwrap_or_default()
    }
    pub fn negotiated_timeout_ms(&self) -> i32 {
        self.session.time_out
    }
    /// The highest zxid seen on a reply.
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }
    /// Requests sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Queues `req` (written at the next [`Client::flush`] or `recv`); returns its xid.
    pub fn send(&mut self, req: &Request) -> io::Result<i32> {
        if self.pending.len() >= CLIENT_PENDING_MAX {
            return Err(io::Error::other("too many outstanding requests"));
        }
        let x = match req.special_xid() {
            Some(x) => x,
            None => {
                let x = self.next_xid;
                self.next_xid = self.next_xid.wrapping_add(1).max(1);
                x
            }
        };
        req.encode_frame(x, &mut self.wbuf);
        self.pending.push_back((x, req.op_code()));
        Ok(x)
    }

    /// Writes every queued request.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Sends raw bytes (for tests of malformed input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush()?;
        self.stream.write_all(bytes)
    }

    /// The next reply or event.
    pub fn recv(&mut self) -> io::Result<Incoming> {
        self.flush()?;
        let body = self.read_frame()?;
        let (header, rest) = ReplyHeader::split(&body).map_err(proto)?;
        if header.xid == xid::NOTIFICATION {
            return match Response::decode(OpCode::Notification, &header, rest).map_err(proto)? {
                Response::Notification(ev) => Ok(Incoming::Event(ev)),
                other => Err(proto(format!("notification with body {other:?}"))),
            };
        }
        let op = match self.pending.front() {
            Some((x, op)) if *x == header.xid => *op,
            Some((x, _)) => {
                return Err(proto(format!(
                    "reply xid {} while xid {x} is oldest outstanding",
                    header.xid
                )));
            }
            None => op_for_special_xid(header.xid).ok_or_else(|| {
                proto(format!("reply xid {} with nothing outstanding", header.xid))
            })?,
        };
        self.pending.pop_front();
        if header.zxid > 0 {
            self.last_zxid = self.last_zxid.max(header.zxid);
        }
        let response = Response::decode(op, &header, rest).map_err(proto)?;
        Ok(Incoming::Reply { header, response })
    }

    /// The next reply, queueing events aside into `events`.
    pub fn recv_reply(
        &mut self,
        events: &mut Vec<WatcherEvent>,
    ) -> io::Result<(ReplyHeader, Response)> {
        loop {
            match self.recv()? {
                Incoming::Reply { header, response } => return Ok((header, response)),
                Incoming::Event(e) => events.push(e),
            }
        }
    }

    /// Sends `req` and waits for its reply (events that arrive meanwhile are dropped).
    pub fn call(&mut self, req: &Request) -> io::Result<(ReplyHeader, Response)> {
        self.send(req)?;
        self.recv_reply(&mut Vec::new())
    }

    /// `call`, turning a non-zero error into `Err`.
    pub fn call_ok(&mut self, req: &Request) -> io::Result<Response> {
        let (h, r) = self.call(req)?;
        if h.err != 0 {
            return Err(keeper_error(h.err));
        }
        Ok(r)
    }

    pub fn create(&mut self, path: &str, data: &[u8], mode: CreateMode) -> io::Result<String> {
        let req = CreateRequest {
            path: path.into(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags: mode.code(),
        };
        match self.call_ok(&Request::Create(req))? {
            Response::Create(r) => Ok(r.path),
            other => Err(proto(format!("create answered {other:?}"))),
        }
    }

    pub fn get_data(&mut self, path: &str, watch: bool) -> io::Result<(Option<Vec<u8>>, Stat)> {
        match self.call_ok(&Request::GetData(GetDataRequest {
            path: path.into(),
            watch,
        }))? {
            Response::GetData(r) => Ok((r.data, r.stat)),
            other => Err(proto(format!("getData answered {other:?}"))),
        }
    }

    pub fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> io::Result<Stat> {
        match self.call_ok(&Request::SetData(SetDataRequest {
            path: path.into(),
            data: Some(data.to_vec()),
            version,
        }))? {
            Response::Stat(r) => Ok(r.stat),
            other => Err(proto(format!("setData answered {other:?}"))),
        }
    }

    pub fn delete(&mut self, path: &str, version: i32) -> io::Result<()> {
        self.call_ok(&Request::Delete(DeleteRequest {
            path: path.into(),
            version,
        }))
        .map(|_| ())
    }

    /// `None` when the node does not exist.
    pub fn exists(&mut self, path: &str, watch: bool) -> io::Result<Option<Stat>> {
        let (h, r) = self.call(&Request::Exists(ExistsRequest {
            path: path.into(),
            watch,
        }))?;
        match (ErrorCode::from_code(h.err), r) {
            (Some(ErrorCode::NoNode), _) => Ok(None),
            (Some(ErrorCode::Ok), Response::Stat(s)) => Ok(Some(s.stat)),
            _ if h.err != 0 => Err(keeper_error(h.err)),
            (_, other) => Err(proto(format!("exists answered {other:?}"))),
        }
    }

    pub fn get_children(&mut self, path: &str, watch: bool) -> io::Result<Vec<String>> {
        match self.call_ok(&Request::GetChildren(GetChildrenRequest {
            path: path.into(),
            watch,
        }))? {
            Response::GetChildren(r) => Ok(r.children),
            other => Err(proto(format!("getChildren answered {other:?}"))),
        }
    }

    /// Closes the session (ephemerals go) and the connection.
    pub fn close(mut self) -> io::Result<()> {
        self.send(&Request::CloseSession)?;
        let _ = self.recv_reply(&mut Vec::new());
        Ok(())
    }

    fn read_frame(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(frame) = self.buf.next_frame().map_err(proto)? {
                return Ok(frame.to_vec());
            }
            let n = self.stream.read(self.buf.spare(64 << 10))?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ));
            }
            self.buf.filled(n);
        }
    }
}
