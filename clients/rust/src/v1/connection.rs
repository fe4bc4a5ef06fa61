//! One 1.0 connection: any thread sends requests (a SEQPACKET send is one whole packet), one
//! reader thread receives every packet and hands each response, with its fds, to the thread
//! waiting for that id; notifications go to their transfer's slot.

use std::collections::HashMap;
use std::io;
use std::os::unix::io::{AsRawFd, OwnedFd};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Map, Value};

use super::methods::{
    Method1, FINISH_TRANSFER, MAX_MESSAGE_SIZE_1, TRANSFER_DATA, TRANSFER_END, TRANSFER_PROGRESS,
};
use super::slot::TransferSlot;
use super::wire::{self, Incoming, RpcFailure};
use crate::channel::{recv_packet, send_packet, shut_down};
use crate::error::{Error, Result};
use crate::session::lock;

/// How long a request past its timeout may take to answer the `$/cancelRequest` sent for it.
const CANCEL_GRACE: Duration = Duration::from_secs(5);
/// vscode-jsonrpc's cancellation notification.
const CANCEL_REQUEST: &str = "$/cancelRequest";

/// Room for the largest message the server may send, and a little more so that an oversized one
/// shows as truncated rather than silently cut.
const RECV_BUFFER_SIZE: usize = MAX_MESSAGE_SIZE_1 + 64 * 1024;

type Delivery = (std::result::Result<Value, RpcFailure>, Vec<OwnedFd>);

/// A successful response: its result and the fds its packet carried.
pub(crate) struct Reply {
    pub value: Value,
    pub fds: Vec<OwnedFd>,
}

struct Waiter {
    sender: SyncSender<Delivery>,
    /// For transfer methods: registered under the result's transfer id before any later packet
    /// is read, so that no notification of the transfer can arrive before its slot.
    slot: Option<Arc<TransferSlot>>,
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, Waiter>,
    transfers: HashMap<u64, Arc<TransferSlot>>,
    /// Why the connection ended, once it has.
    closed: Option<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

impl Shared {
    fn closed_reason(&self) -> String {
        lock(&self.state)
            .closed
            .clone()
            .unwrap_or_else(|| "the connection ended".into())
    }

    /// Fails every waiting request and transfer; later requests fail at once.
    fn close(&self, reason: String) {
        let (pending, transfers) = {
            let mut state = lock(&self.state);
            if state.closed.is_none() {
                state.closed = Some(reason.clone());
            }
            (
                std::mem::take(&mut state.pending),
                std::mem::take(&mut state.transfers),
            )
        };
        // Dropping the senders wakes their waiters.
        drop(pending);
        for slot in transfers.values() {
            slot.connection_closed(&reason);
        }
    }
}

/// A request in flight: wait for its response, or drop it to ignore the response.
pub(crate) struct PendingCall {
    id: u64,
    method: &'static str,
    receiver: Receiver<Delivery>,
    shared: Arc<Shared>,
}

impl PendingCall {
    /// Waits for the answer, however long it takes.
    pub(crate) fn wait(self) -> Result<Reply> {
        let delivery = self.receiver.recv();
        self.outcome(delivery.map_err(|_| RecvTimeoutError::Disconnected))
    }

    fn outcome(&self, delivery: std::result::Result<Delivery, RecvTimeoutError>) -> Result<Reply> {
        match delivery {
            Ok((Ok(value), fds)) => Ok(Reply { value, fds }),
            Ok((Err(failure), _)) => Err(failure.into_error(self.method)),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Closed(self.shared.closed_reason())),
            Err(RecvTimeoutError::Timeout) => Err(Error::io(
                format!("{} got no answer, even after {CANCEL_REQUEST}", self.method),
                io::ErrorKind::TimedOut.into(),
            )),
        }
    }
}

pub(crate) struct Connection {
    socket: Arc<OwnedFd>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    child: Mutex<Option<Child>>,
    /// Requests (but FinishTransfer) unanswered this long are cancelled.
    timeout: Option<Duration>,
}

impl Connection {
    /// Starts the reader thread on `socket`; `child` is the spawned server, if any.
    pub(crate) fn start(
        socket: OwnedFd,
        child: Option<Child>,
        timeout: Option<Duration>,
    ) -> Result<Connection> {
        let socket = Arc::new(socket);
        let shared = Arc::new(Shared::default());
        let (reader_socket, reader_shared) = (Arc::clone(&socket), Arc::clone(&shared));
        let started = thread::Builder::new()
            .name("layerpipe-rpc-reader".into())
            .spawn(move || read_loop(&reader_socket, &reader_shared));
        let connection = Connection {
            socket,
            shared,
            next_id: AtomicU64::new(1),
            child: Mutex::new(child),
            timeout,
        };
        // On failure the connection drops here, which closes the socket and reaps the child.
        started.map_err(|e| Error::io("starting the reader thread", e))?;
        Ok(connection)
    }

    /// Sends a request; `slot` receives the transfer's notifications if the result is one.
    pub(crate) fn start_call(
        &self,
        method: &'static Method1,
        params: Map<String, Value>,
        slot: Option<Arc<TransferSlot>>,
    ) -> Result<PendingCall> {
        method.check_params(&params)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let packet = wire::encode_request(id, method.name, params);
        if packet.len() > MAX_MESSAGE_SIZE_1 {
            return Err(Error::InvalidArgument(format!(
                "{} request of {} bytes exceeds {MAX_MESSAGE_SIZE_1}",
                method.name,
                packet.len()
            )));
        }
        let (sender, receiver) = sync_channel(1);
        {
            let mut state = lock(&self.shared.state);
            if let Some(reason) = &state.closed {
                return Err(Error::Closed(reason.clone()));
            }
            state.pending.insert(id, Waiter { sender, slot });
        }
        if let Err(e) = send_packet(self.socket.as_raw_fd(), &packet, MAX_MESSAGE_SIZE_1) {
            lock(&self.shared.state).pending.remove(&id);
            return Err(Error::io(
                format!("sending {} to the server", method.name),
                e,
            ));
        }
        Ok(PendingCall {
            id,
            method: method.name,
            receiver,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Sends a request and waits for its response.
    pub(crate) fn call(
        &self,
        method: &'static Method1,
        params: Map<String, Value>,
    ) -> Result<Reply> {
        let pending = self.start_call(method, params, None)?;
        self.wait(pending)
    }

    /// Waits for a response. Past the connection's timeout the server is asked to cancel the
    /// request (`$/cancelRequest`), which it answers with a Cancelled error: that error, or the
    /// answer that crossed the notification, is returned. FinishTransfer waits for the data
    /// and is never cancelled this way.
    pub(crate) fn wait(&self, pending: PendingCall) -> Result<Reply> {
        let timeout = match self.timeout {
            Some(timeout) if pending.method != FINISH_TRANSFER.name => timeout,
            _ => return pending.wait(),
        };
        match pending.receiver.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => {
                let mut params = Map::new();
                params.insert("id".into(), Value::from(pending.id));
                let _ = self.notify(CANCEL_REQUEST, params);
                let delivery = pending.receiver.recv_timeout(CANCEL_GRACE);
                pending.outcome(delivery)
            }
            delivery => pending.outcome(delivery),
        }
    }

    /// Sends a notification (no response comes).
    pub(crate) fn notify(&self, method: &str, params: Map<String, Value>) -> Result<()> {
        let packet = wire::encode_notification(method, params);
        send_packet(self.socket.as_raw_fd(), &packet, MAX_MESSAGE_SIZE_1)
            .map_err(|e| Error::io(format!("sending {method} to the server"), e))
    }

    /// Stops routing notifications of a transfer the client is done with.
    pub(crate) fn forget_transfer(&self, id: u64) {
        lock(&self.shared.state).transfers.remove(&id);
    }

    /// Closes the socket for both directions: the server sees the client go, the reader
    /// thread sees the end and fails whatever still waits.
    pub(crate) fn close(&self, reason: &str) {
        shut_down(self.socket.as_raw_fd());
        self.shared.close(reason.to_string());
    }

    /// Waits for a spawned server to exit (after Shutdown) and checks its status is 0.
    pub(crate) fn wait_child(&self) -> Result<()> {
        if let Some(mut child) = lock(&self.child).take() {
            let status = child
                .wait()
                .map_err(|e| Error::io("waiting for the proxy to exit", e))?;
            if !status.success() {
                return Err(Error::ProxyExited(status));
            }
        }
        Ok(())
    }

    /// A spawned server that refused its flags dies before answering Initialize; its exit
    /// status (its stderr has the reason) says more than the broken socket does.
    pub(crate) fn explain_failed_start(&self, err: Error) -> Error {
        if !matches!(err, Error::Io { .. } | Error::Closed(_)) {
            return err;
        }
        if let Some(process) = lock(&self.child).as_mut() {
            for _ in 0..50 {
                match process.try_wait() {
                    Ok(Some(status)) if !status.success() => return Error::ProxyExited(status),
                    Ok(None) => thread::sleep(Duration::from_millis(20)),
                    _ => break,
                }
            }
        }
        err
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close("the client closed the connection");
        // A spawned server exits once its socket closes; reap it without making the caller wait.
        if let Some(mut child) = lock(&self.child).take() {
            if let Ok(None) = child.try_wait() {
                let _ = thread::Builder::new()
                    .name("layerpipe-reaper".into())
                    .spawn(move || child.wait());
            }
        }
    }
}

fn read_loop(socket: &OwnedFd, shared: &Shared) {
    let mut buffer = vec![0u8; RECV_BUFFER_SIZE];
    loop {
        let (length, fds) = match recv_packet(socket.as_raw_fd(), &mut buffer) {
            Ok(packet) => packet,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return shared.close("the server closed the connection".into())
            }
            Err(e) => return shared.close(format!("receiving from the server: {e}")),
        };
        match wire::decode(&buffer[..length]) {
            Ok(message) => dispatch(shared, message, fds),
            Err(why) => {
                // Nothing the server sends after a malformed packet can be trusted.
                shut_down(socket.as_raw_fd());
                return shared.close(format!("protocol error: {why}"));
            }
        }
    }
}

fn dispatch(shared: &Shared, message: Incoming, fds: Vec<OwnedFd>) {
    match message {
        Incoming::Response { id, outcome } => {
            let waiter = {
                let mut state = lock(&shared.state);
                let waiter = state.pending.remove(&id);
                if let (
                    Some(Waiter {
                        slot: Some(slot), ..
                    }),
                    Ok(result),
                ) = (&waiter, &outcome)
                {
                    if let Some(transfer) = result.get("transfer").and_then(Value::as_u64) {
                        state.transfers.insert(transfer, Arc::clone(slot));
                    }
                }
                waiter
            };
            // No waiter (a dropped PendingCall): the fds close here.
            if let Some(waiter) = waiter {
                let _ = waiter.sender.send((outcome, fds));
            }
        }
        Incoming::Notification { method, params } => {
            let slot = params
                .get("transfer")
                .and_then(Value::as_u64)
                .and_then(|id| lock(&shared.state).transfers.get(&id).cloned());
            if let Some(slot) = slot {
                match method.as_str() {
                    TRANSFER_DATA => slot.data(&params),
                    TRANSFER_END => slot.end(&params),
                    TRANSFER_PROGRESS => slot.progress(&params),
                    _ => {}
                }
            }
        }
        // The server could not read one of our requests: it cannot happen with this encoder,
        // and nobody can be told.
        Incoming::Unroutable(_) => {}
    }
}
