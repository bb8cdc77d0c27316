#pragma once
// AF_UNIX SOCK_SEQPACKET sockets with descriptor passing and peer credentials: the parts of the
// socket API that Swift's Glibc module hides (CMSG_* macros, struct ucred, accept4) or makes
// awkward (sockaddr_un, setsockopt). Every descriptor created here is close-on-exec.
// Functions return -1 with errno set on failure; EINTR is retried inside.
#include <stddef.h>
#include <sys/types.h>
// epoll and eventfd for the daemon's socket loop (EDMMSystem.EventPoll): Glibc's module map has neither.
#include <sys/epoll.h>
#include <sys/eventfd.h>

enum {
    /// Most descriptors one message may carry, in either direction.
    EDMM_MAX_FDS_PER_MESSAGE = 16,
    /// Bits of edmm_recv_with_fds()'s *truncation.
    EDMM_RECV_DATA_TRUNCATED = 1 << 0, // MSG_TRUNC: the message was longer than the buffer
    EDMM_RECV_FDS_TRUNCATED = 1 << 1,  // MSG_CTRUNC, or more fds than asked for (surplus closed)
};

/// sendmsg(2) of one message with `nfds` descriptors (SCM_RIGHTS) and MSG_NOSIGNAL (a dead peer
/// gives EPIPE, never SIGPIPE). `nfds` above EDMM_MAX_FDS_PER_MESSAGE is EINVAL.
/// Returns the bytes sent.
ssize_t edmm_send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/// recvmsg(2) of one message with MSG_CMSG_CLOEXEC, keeping at most `*nfds` descriptors (capped
/// at EDMM_MAX_FDS_PER_MESSAGE). On return `*nfds` is the number stored in `fds`; descriptors
/// beyond it were closed here or discarded by the kernel. `*truncation` is a mask of
/// EDMM_RECV_*_TRUNCATED; when non-zero the caller must close the fds it got and treat the
/// message as bad. Returns the bytes stored in `buf`, 0 on end of stream (SOCK_SEQPACKET cannot
/// tell an empty message from EOF, so protocols must not send empty messages).
ssize_t edmm_recv_with_fds(int sock, void *buf, size_t len, int *fds, size_t *nfds, int *truncation);

/// getsockopt(SO_PEERCRED): the peer's pid, uid and gid as of connect(2) / socketpair(2).
int edmm_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid);

/// getsockopt(SO_PEERPIDFD) (Linux >= 6.5): a pidfd (close-on-exec) of the peer as of
/// connect(2), which stays that process's even after its pid is reused. Returns -1 with errno
/// ENOPROTOOPT on older kernels.
int edmm_peer_pidfd(int sock);

/// Whether the process of a pidfd still runs (a zombie counts: its pid is not free yet):
/// pidfd_send_signal(2) with signal 0. Returns 1, 0 when it is gone, or -1 with errno.
int edmm_pidfd_alive(int pidfd);

/// accept4(2) with SOCK_CLOEXEC | SOCK_NONBLOCK. Returns the new descriptor.
int edmm_accept(int listen_fd);

/// socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC [| SOCK_NONBLOCK]).
int edmm_seqpacket_socket(int nonblocking);

/// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC [| SOCK_NONBLOCK]) into fds[0], fds[1].
int edmm_seqpacket_pair(int fds[2], int nonblocking);

/// bind(2) to a filesystem path. A path that does not fit sockaddr_un.sun_path (107 bytes plus
/// the terminating NUL) is ENAMETOOLONG rather than silently truncated; an empty path is EINVAL.
int edmm_unix_bind(int fd, const char *path);

/// connect(2) to a filesystem path, with the path rules of edmm_unix_bind.
int edmm_unix_connect(int fd, const char *path);

/// A SOCK_SEQPACKET listener on `path`: socket + bind + listen(backlog). The descriptor is closed
/// again on failure. Does not remove an existing file at `path` (EADDRINUSE). Returns the fd.
int edmm_seqpacket_listen(const char *path, int backlog, int nonblocking);

/// A SOCK_SEQPACKET socket connected to `path`; closed again on failure. Returns the fd.
int edmm_seqpacket_connect(const char *path, int nonblocking);

/// SO_SNDBUF / SO_RCVBUF. A value <= 0 leaves that buffer alone. The kernel doubles what it is
/// given and clamps it to net.core.{w,r}mem_max.
int edmm_set_buffer_sizes(int fd, int send_bytes, int receive_bytes);
int edmm_get_buffer_sizes(int fd, int *send_bytes, int *receive_bytes);
