/* Minimal auth_http endpoint in C: one thread, epoll.  Used by the load harness
 * only when nginx (which normally serves the auth endpoint) is not installed.
 *
 * For every request it reads the header block (up to 8 KiB, ending in CRLF CRLF),
 * looks at the Auth-Protocol and Auth-User headers and answers, then closes the
 * connection:
 *
 *   HTTP/1.1 204 No Content
 *   Auth-Status: OK | Invalid login | Unexpected Auth-Protocol (expected PROTO)
 *   Auth-Server: 127.0.0.1
 *   Auth-Port: <backend port>
 *
 * Invalid login when Auth-User starts with "bad"; the third answer when
 * Auth-Protocol is missing or is not the run's protocol (-P, default pop3).
 * That is what the nginx auth instance of the harness sends (its map and
 * add_header lines).
 *
 *   authd -p PORT -b BACKEND_PORT [-P pop3|imap|smtp]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 65536
#define REQMAX 8192

struct conn {
    int len;
    char *buf;
};

static struct conn conns[MAXFD];
static char resp_ok[256], resp_bad[256], resp_proto[256];
static int resp_ok_len, resp_bad_len, resp_proto_len;
static const char *proto = "pop3";

static void drop(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    free(conns[fd].buf);
    conns[fd].buf = NULL;
    conns[fd].len = 0;
    close(fd);
}

/* the value of header NAME (with its colon) in the header block, or NULL;
 * *vlen is set to its length without trailing CR / blanks */
static const char *header(const char *req, int len, const char *name, int *vlen)
{
    const char *p = req, *end = req + len;
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *vlen = (int)(e - v);
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

/* the answer for one request: wrong or missing Auth-Protocol, bad* user, or OK */
static void answer(int fd, const char *req, int len)
{
    int n;
    const char *v = header(req, len, "Auth-Protocol:", &n);
    if (!v || (size_t)n != strlen(proto) || memcmp(v, proto, (size_t)n) != 0) {
        (void)!write(fd, resp_proto, (size_t)resp_proto_len);
        return;
    }
    v = header(req, len, "Auth-User:", &n);
    if (v && n >= 3 && memcmp(v, "bad", 3) == 0)
        (void)!write(fd, resp_bad, (size_t)resp_bad_len);
    else
        (void)!write(fd, resp_ok, (size_t)resp_ok_len);
}

int main(int argc, char **argv)
{
    int port = 17180, bport = 17110, c;
    while ((c = getopt(argc, argv, "p:b:P:")) != -1) {
        if (c == 'p')
            port = atoi(optarg);
        else if (c == 'b')
            bport = atoi(optarg);
        else if (c == 'P')
            proto = optarg;
        else {
            fprintf(stderr, "usage: %s -p PORT -b BACKEND_PORT [-P pop3|imap|smtp]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    static const char fmt[] = "HTTP/1.1 204 No Content\r\nServer: bench-authd\r\nConnection: close\r\n"
                              "Auth-Status: %s\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: %d\r\n\r\n";
    resp_ok_len = snprintf(resp_ok, sizeof resp_ok, fmt, "OK", bport);
    resp_bad_len = snprintf(resp_bad, sizeof resp_bad, fmt, "Invalid login", bport);
    char why[96];
    snprintf(why, sizeof why, "Unexpected Auth-Protocol (expected %s)", proto);
    resp_proto_len = snprintf(resp_proto, sizeof resp_proto, fmt, why, bport);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 4096) < 0) {
        perror("authd: bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    fprintf(stderr, "authd: listening on 127.0.0.1:%d (backend port %d, protocol %s)\n", port, bport, proto);

    struct epoll_event evs[256];
    char tmp[REQMAX];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("authd: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                for (int k = 0; k < 256; k++) {
                    int cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (cfd < 0)
                        break;
                    if (cfd >= MAXFD) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ce);
                }
                continue;
            }
            struct conn *cn = &conns[fd];
            ssize_t r = read(fd, tmp, sizeof tmp);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                drop(ep, fd);
                continue;
            }
            const char *req = tmp;
            int len = (int)r;
            if (cn->buf || memmem(tmp, (size_t)r, "\r\n\r\n", 4) == NULL) {
                /* header block split over reads: accumulate */
                if (!cn->buf)
                    cn->buf = malloc(REQMAX);
                if (cn->len + r > REQMAX) {
                    drop(ep, fd);
                    continue;
                }
                memcpy(cn->buf + cn->len, tmp, (size_t)r);
                cn->len += (int)r;
                if (memmem(cn->buf, (size_t)cn->len, "\r\n\r\n", 4) == NULL)
                    continue;
                req = cn->buf;
                len = cn->len;
            }
            answer(fd, req, len);
            drop(ep, fd);
        }
    }
}
