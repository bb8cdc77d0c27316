#define _GNU_SOURCE
#include "edmm_socket.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

typedef union {
    struct cmsghdr align;
    char bytes[CMSG_SPACE(sizeof(int) * EDMM_MAX_FDS_PER_MESSAGE)];
} fd_control_buffer;

ssize_t edmm_send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds) {
    if (nfds > EDMM_MAX_FDS_PER_MESSAGE) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    fd_control_buffer control;
    if (nfds > 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t edmm_recv_with_fds(int sock, void *buf, size_t len, int *fds, size_t *nfds, int *truncation) {
    size_t capacity = *nfds < EDMM_MAX_FDS_PER_MESSAGE ? *nfds : EDMM_MAX_FDS_PER_MESSAGE;
    *nfds = 0;
    *truncation = 0;
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    // Room for `capacity` fds only, so the kernel itself discards (and flags) most surplus fds.
    fd_control_buffer control;
    if (capacity > 0) {
        msg.msg_control = control.bytes;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * capacity);
    }
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    if (msg.msg_flags & MSG_TRUNC) *truncation |= EDMM_RECV_DATA_TRUNCATED;
    if (msg.msg_flags & MSG_CTRUNC) *truncation |= EDMM_RECV_FDS_TRUNCATED;
    if (msg.msg_controllen == 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (*nfds < capacity) {
                fds[(*nfds)++] = fd;
            } else {
                // CMSG_SPACE rounds up, so the kernel may install more than asked for: the
                // descriptors already exist in this process and must not leak.
                close(fd);
                *truncation |= EDMM_RECV_FDS_TRUNCATED;
            }
        }
    }
    return n;
}

int edmm_peer_credentials(int sock, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t size = sizeof(cred);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* <asm-generic/socket.h>, Linux 6.5 */
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

int edmm_peer_pidfd(int sock) {
    int pidfd = -1;
    socklen_t size = sizeof(pidfd);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &size) != 0) return -1;
    return pidfd;
}

int edmm_pidfd_alive(int pidfd) {
    if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0) return 1;
    if (errno == ESRCH) return 0;
    if (errno == EPERM) return 1; /* it exists; we may not signal it */
    return -1;
}

int edmm_accept(int listen_fd) {
    int fd;
    do {
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

static int seqpacket_type(int nonblocking) {
    return SOCK_SEQPACKET | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
}

int edmm_seqpacket_socket(int nonblocking) { return socket(AF_UNIX, seqpacket_type(nonblocking), 0); }

int edmm_seqpacket_pair(int fds[2], int nonblocking) {
    return socketpair(AF_UNIX, seqpacket_type(nonblocking), 0, fds);
}

static int fill_address(struct sockaddr_un *address, const char *path) {
    size_t length = strlen(path);
    if (length == 0) {
        errno = EINVAL;
        return -1;
    }
    if (length >= sizeof(address->sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    memcpy(address->sun_path, path, length + 1);
    return 0;
}

int edmm_unix_bind(int fd, const char *path) {
    struct sockaddr_un address;
    if (fill_address(&address, path) != 0) return -1;
    return bind(fd, (const struct sockaddr *)&address, sizeof(address));
}

int edmm_unix_connect(int fd, const char *path) {
    struct sockaddr_un address;
    if (fill_address(&address, path) != 0) return -1;
    // A connect interrupted by a signal keeps going in the kernel; retrying would give EALREADY.
    // AF_UNIX connects complete or fail at once, so EINTR is simply reported.
    return connect(fd, (const struct sockaddr *)&address, sizeof(address));
}

static int close_preserving_errno(int fd) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int edmm_seqpacket_listen(const char *path, int backlog, int nonblocking) {
    int fd = edmm_seqpacket_socket(nonblocking);
    if (fd < 0) return -1;
    if (edmm_unix_bind(fd, path) != 0 || listen(fd, backlog) != 0) return close_preserving_errno(fd);
    return fd;
}

int edmm_seqpacket_connect(const char *path, int nonblocking) {
    int fd = edmm_seqpacket_socket(nonblocking);
    if (fd < 0) return -1;
    if (edmm_unix_connect(fd, path) != 0) return close_preserving_errno(fd);
    return fd;
}

int edmm_set_buffer_sizes(int fd, int send_bytes, int receive_bytes) {
    if (send_bytes > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_bytes, sizeof(send_bytes)) != 0) return -1;
    if (receive_bytes > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_bytes, sizeof(receive_bytes)) != 0)
        return -1;
    return 0;
}

int edmm_get_buffer_sizes(int fd, int *send_bytes, int *receive_bytes) {
    socklen_t size = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, send_bytes, &size) != 0) return -1;
    size = sizeof(int);
    return getsockopt(fd, SOL_SOCKET, SO_RCVBUF, receive_bytes, &size);
}
