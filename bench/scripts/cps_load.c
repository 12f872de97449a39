/*
 * Connection-rate load for bench/scripts/relay_vs_proxies.sh: the same work as
 * relay_vs_proxies_tool.py's cps-client/cps-server, in C with epoll, so that the
 * endpoints' core spends its time in the kernel's TCP/MPTCP work and not in a Python
 * interpreter (the endpoints share one core; the faster the load, the more a gateway's
 * own limit shows).
 *
 *   cps_load cps-server HOST PORT
 *       Accepts, reads what the client sent (1 byte, or EOF/RST), closes. Prints
 *       "listening" once bound. Runs until killed.
 *   cps_load cps-client HOST PORT SECONDS CONCURRENCY
 *       Keeps CONCURRENCY MPTCP sockets (IPPROTO_MPTCP) in flight to HOST:PORT for
 *       SECONDS, each: connect, send 1 byte, wait for the peer's EOF (the connection was
 *       relayed to the server and closed by it), close, open the next. The first 20
 *       connections are checked for fallback (MPTCP_INFO flags). Prints the JSON
 *       {ok, errors, elapsed, cps, fallback_checked, fallback, error_kinds}.
 *
 * Build: gcc -O2 -o cps_load cps_load.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IPPROTO_MPTCP_ 262
#define SOL_MPTCP_ 284
#define MPTCP_INFO_ 1
#define MPTCP_INFO_FLAG_FALLBACK_ 1
#define MAX_CONC 4096
#define MAX_EVENTS 256

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int parse_addr(const char *host, const char *port, struct sockaddr_in *a)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((unsigned short)atoi(port));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static int server(const char *host, const char *port)
{
	struct sockaddr_in a;
	struct epoll_event ev, evs[MAX_EVENTS];
	int one = 1, ls, ep;

	if (parse_addr(host, port, &a) < 0) {
		fprintf(stderr, "bad address %s\n", host);
		return 2;
	}
	ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4096) < 0) {
		perror("listen");
		return 1;
	}
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.fd = ls;
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	printf("listening\n");
	fflush(stdout);
	for (;;) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == ls) {
				int c;
				while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					ev.events = EPOLLIN;
					ev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				}
			} else {
				char buf[4096];
				if (read(fd, buf, sizeof(buf)) < 0 && errno == EAGAIN)
					continue;
				close(fd); /* also leaves the epoll set */
			}
		}
	}
}

struct counts {
	long ok, err, fb, fbc;
	long kinds[256]; /* errors by errno */
};

/* Opens one connecting socket registered for writability; -1 (counted) on failure. */
static int open_one(int ep, const struct sockaddr_in *a, struct counts *c)
{
	struct epoll_event ev;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, IPPROTO_MPTCP_);
	if (s < 0) {
		c->err++;
		c->kinds[errno & 255]++;
		return -1;
	}
	if (connect(s, (const struct sockaddr *)a, sizeof(*a)) < 0 && errno != EINPROGRESS) {
		c->err++;
		c->kinds[errno & 255]++;
		close(s);
		return -1;
	}
	ev.events = EPOLLOUT;
	ev.data.fd = s;
	epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
	return s;
}

static void fail(int fd, int e, struct counts *c)
{
	c->err++;
	c->kinds[e & 255]++;
	close(fd);
}

static int client(const char *host, const char *port, double seconds, int conc)
{
	struct sockaddr_in a;
	struct epoll_event ev, evs[MAX_EVENTS];
	struct counts c;
	double t0, deadline;
	int ep, live = 0;

	memset(&c, 0, sizeof(c));
	if (parse_addr(host, port, &a) < 0 || conc < 1 || conc > MAX_CONC) {
		fprintf(stderr, "bad address or concurrency\n");
		return 2;
	}
	ep = epoll_create1(0);
	t0 = now();
	deadline = t0 + seconds;
	for (int i = 0; i < conc; i++)
		live += open_one(ep, &a, &c) >= 0;
	while (live > 0) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, 100);
		int more = now() < deadline;
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (evs[i].events & EPOLLOUT) {
				int e = 0;
				socklen_t l = sizeof(e);
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
				if (e || send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
					fail(fd, e ? e : errno, &c);
					live--;
				} else {
					if (c.fbc < 20) {
						unsigned char info[96];
						socklen_t il = sizeof(info);
						if (getsockopt(fd, SOL_MPTCP_, MPTCP_INFO_, info, &il) == 0 &&
						    il > 8) {
							c.fbc++;
							c.fb += (info[8] & MPTCP_INFO_FLAG_FALLBACK_) != 0;
						}
					}
					ev.events = EPOLLIN;
					ev.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
					continue;
				}
			} else {
				char buf[4096];
				ssize_t r = read(fd, buf, sizeof(buf));
				if (r > 0 || (r < 0 && errno == EAGAIN))
					continue;
				if (r == 0) {
					c.ok++;
					close(fd);
				} else {
					fail(fd, errno, &c);
				}
				live--;
			}
			if (more)
				live += open_one(ep, &a, &c) >= 0;
		}
		if (n == 0 && !more)
			break; /* nothing moved for 100 ms after the deadline: stop waiting */
	}
	double elapsed = now() - t0;
	printf("{\"ok\": %ld, \"errors\": %ld, \"elapsed\": %.3f, \"cps\": %.1f, "
	       "\"fallback_checked\": %ld, \"fallback\": %ld, \"error_kinds\": {",
	       c.ok, c.err, elapsed, c.ok / elapsed, c.fbc, c.fb);
	const char *sep = "";
	for (int e = 0; e < 256; e++) {
		if (c.kinds[e]) {
			printf("%s\"errno/%d\": %ld", sep, e, c.kinds[e]);
			sep = ", ";
		}
	}
	printf("}}\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "cps-server") == 0)
		return server(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "cps-client") == 0)
		return client(argv[2], argv[3], atof(argv[4]), atoi(argv[5]));
	fprintf(stderr, "usage: cps_load cps-server HOST PORT | cps-client HOST PORT SECONDS CONCURRENCY\n");
	return 2;
}
