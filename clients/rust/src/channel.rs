//! Our end of the SOCK_SEQPACKET socket pair: one JSON document per packet each way, with
//! pipe read ends arriving beside replies as a single SCM_RIGHTS message.

use std::io;
use std::mem;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::ptr;

use crate::methods::MAX_MESSAGE_SIZE;

/// 0.2.x replies are normally below 32 KiB, but GetLayerInfo answers inline and can exceed it.
const RECV_BUFFER_SIZE: usize = 1 << 20;
/// The wire passes at most two fds; the spare room lets us see (and close) extra ones
/// instead of having the kernel silently drop them.
const MAX_RECEIVED_FDS: usize = 8;

/// Creates the close-on-exec socket pair shared with the proxy.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    // SAFETY: fds points to two ints, as socketpair requires.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// One received packet: the JSON bytes and any file descriptors that came with it.
pub(crate) struct Packet<'a> {
    pub bytes: &'a [u8],
    pub fds: Vec<OwnedFd>,
}

pub(crate) struct Channel {
    socket: OwnedFd,
    buffer: Vec<u8>,
}

impl Channel {
    pub(crate) fn new(socket: OwnedFd) -> Channel {
        Channel {
            socket,
            buffer: vec![0; RECV_BUFFER_SIZE],
        }
    }

    pub(crate) fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Sends one packet. MSG_NOSIGNAL: a dead proxy must give us EPIPE, not kill us.
    pub(crate) fn send(&self, packet: &[u8]) -> io::Result<()> {
        send_packet(self.raw_fd(), packet, MAX_MESSAGE_SIZE)
    }

    /// Receives one packet. End of stream (the proxy exited) is an UnexpectedEof error.
    pub(crate) fn recv(&mut self) -> io::Result<Packet<'_>> {
        let (received, fds) = recv_packet(self.raw_fd(), &mut self.buffer)?;
        Ok(Packet {
            bytes: &self.buffer[..received],
            fds,
        })
    }
}

/// Sends one packet of at most `limit` bytes. MSG_NOSIGNAL: a dead peer must give us EPIPE,
/// not kill us. Sends from several threads never interleave: a seqpacket send is one packet.
pub(crate) fn send_packet(socket: RawFd, packet: &[u8], limit: usize) -> io::Result<()> {
    if packet.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("request of {} bytes exceeds {limit}", packet.len()),
        ));
    }
    loop {
        // SAFETY: the pointer and length describe `packet`, alive for the call.
        let sent = unsafe {
            libc::send(
                socket,
                packet.as_ptr().cast(),
                packet.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if sent < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        // A seqpacket send is all or nothing.
        return Ok(());
    }
}

/// Receives one packet into `buffer`: its length and the fds that came with it. End of stream
/// (the peer closed) is an UnexpectedEof error, a packet larger than `buffer` InvalidData.
pub(crate) fn recv_packet(socket: RawFd, buffer: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let fd_bytes = (MAX_RECEIVED_FDS * mem::size_of::<libc::c_int>()) as libc::c_uint;
    // SAFETY: CMSG_SPACE only computes a size.
    let control_len = unsafe { libc::CMSG_SPACE(fd_bytes) } as usize;
    let mut control = vec![0u64; (control_len + 7) / 8];

    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control_len as _;

    let received = loop {
        // SAFETY: msg points at live buffers of the lengths it declares.
        let n = unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        break n as usize;
    };

    // Take ownership of every fd first, so that any error below still closes them.
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* walk stays within msg_controllen as filled in by the kernel.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg);
                let payload = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for i in 0..payload / mem::size_of::<libc::c_int>() {
                    let fd = ptr::read_unaligned(
                        data.add(i * mem::size_of::<libc::c_int>()) as *const libc::c_int
                    );
                    fds.push(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }

    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "reply carried more file descriptors than the protocol allows",
        ));
    }
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("reply larger than {} bytes", buffer.len()),
        ));
    }
    if received == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the proxy closed its socket",
        ));
    }
    Ok((received, fds))
}

/// Connects a close-on-exec SOCK_SEQPACKET socket to the unix socket at `path`.
pub(crate) fn connect_seqpacket(path: &Path) -> io::Result<OwnedFd> {
    // SAFETY: sockaddr_un is plain data; all-zero is a valid empty value.
    let mut address: libc::sockaddr_un = unsafe { mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    // The kernel wants room for a terminating NUL.
    if bytes.is_empty() || bytes.len() >= address.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket path {} is empty or longer than {} bytes",
                path.display(),
                address.sun_path.len() - 1
            ),
        ));
    }
    for (slot, byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket succeeded; nobody else owns fd.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let length = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    loop {
        // SAFETY: address is a valid sockaddr_un of at least `length` bytes.
        let rc = unsafe {
            libc::connect(
                socket.as_raw_fd(),
                (&address as *const libc::sockaddr_un).cast(),
                length as libc::socklen_t,
            )
        };
        if rc == 0 {
            return Ok(socket);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Wakes a thread blocked receiving on `socket` (it sees end of stream) and tells the peer we
/// are gone, without closing the fd under that thread.
pub(crate) fn shut_down(socket: RawFd) {
    // SAFETY: shutdown on an fd we own; failure (already shut down) is harmless.
    unsafe {
        libc::shutdown(socket, libc::SHUT_RDWR);
    }
}
