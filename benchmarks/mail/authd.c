/* Minimal auth_http endpoint in C: one thread, epoll.  Used by the load harness
 * only when nginx (which normally serves the auth endpoint) is not installed.
 *
 * For every request it reads the header block (up to 8 KiB, ending in CRLF CRLF),
 * looks at the Auth-User header and answers, then closes the connection:
 *
 *   HTTP/1.1 204 No Content
 *   Auth-Status: OK | Invalid login      (Invalid login when Auth-User starts with "bad")
 *   Auth-Server: 127.0.0.1
 *   Auth-Port: <backend port>
 *
 * which is what the nginx auth instance of the harness sends (its add_header lines).
 *
 *   authd -p PORT -b BACKEND_PORT
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
static char resp_ok[256], resp_bad[256];
static int resp_ok_len, resp_bad_len;

static void drop(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    free(conns[fd].buf);
    conns[fd].buf = NULL;
    conns[fd].len = 0;
    close(fd);
}

/* 1 when the header block's Auth-User value starts with "bad" */
static int is_bad(const char *req, int len)
{
    const char *p = req, *end = req + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if (eol - p > 10 && strncasecmp(p, "Auth-User:", 10) == 0) {
            const char *v = p + 10;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            return eol - v >= 3 && memcmp(v, "bad", 3) == 0;
        }
        p = eol + 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = 17180, bport = 17110, c;
    while ((c = getopt(argc, argv, "p:b:")) != -1) {
        if (c == 'p')
            port = atoi(optarg);
        else if (c == 'b')
            bport = atoi(optarg);
        else {
            fprintf(stderr, "usage: %s -p PORT -b BACKEND_PORT\n", argv[0]);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    static const char fmt[] = "HTTP/1.1 204 No Content\r\nServer: bench-authd\r\nConnection: close\r\n"
                              "Auth-Status: %s\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: %d\r\n\r\n";
    resp_ok_len = snprintf(resp_ok, sizeof resp_ok, fmt, "OK", bport);
    resp_bad_len = snprintf(resp_bad, sizeof resp_bad, fmt, "Invalid login", bport);

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
    fprintf(stderr, "authd: listening on 127.0.0.1:%d (backend port %d)\n", port, bport);

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
            if (is_bad(req, len))
                (void)!write(fd, resp_bad, (size_t)resp_bad_len);
            else
                (void)!write(fd, resp_ok, (size_t)resp_ok_len);
            drop(ep, fd);
        }
    }
}
