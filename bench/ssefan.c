/* ssefan: an SSE fan-out load generator cheap enough not to be the bottleneck on a small machine.
 *
 * N subscribers hold GET <stream> (HTTP/1.1, chunked or not); P keep-alive publishers POST glints
 * open-loop at RATE per second for DURATION seconds, each carrying context.bench_ts (send time) and
 * context.bench_i (its index). Every subscriber counts glint_emission events that carry bench_ts,
 * checks that SSE ids only grow and that no bench_i (the glint's index) arrives twice, and records POST-to-delivery latency.
 * Prints one JSON line. Single thread, epoll, loopback. Build: cc -O2 -o ssefan ssefan.c -lm
 * RATE 0 = closed loop: each publisher posts again as soon as it is answered (ingest capacity).
 * Usage: ssefan PORT SUBS RATE DURATION [DRAIN] [STREAM_PATH] [POST_PATH] [PUBLISHERS]
 * With SSEFAN_LATENCIES=FILE in the environment it also writes every delivery latency there.
 * It writes "ssefan: publishing", "ssefan: draining" and "ssefan: done" to stderr as each phase starts
 * and when the drain ends, so that a caller can measure the server over those windows.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t); return t.tv_sec + t.tv_nsec / 1e9; }

enum { HEAD, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, PLAIN };

typedef struct {
    int fd, pub, state, chunked, is_glint, busy, closed;
    long chunk_left, count, last_id, disorder, dups;
    unsigned char *seen;
    char hdr[4096]; int hlen;
    char line[65536]; int llen;
    char csz[32]; int cszlen;
    double sent_at, used_at; /* publishers: last POST sent; last answer read (or dial) */
} Conn;

static double *lat; static long nlat, caplat;
static double *plat; static long nplat;
static double tread;
static long maxposts;

static void on_line(Conn *c) {
    char *l = c->line; int n = c->llen;
    if (n && l[n - 1] == '\r') n--;
    l[n] = 0;
    if (n == 0) { c->is_glint = 0; return; }
    if (!strncmp(l, "id:", 3)) { long id = strtol(l + 3, NULL, 10); if (c->last_id >= 0 && id <= c->last_id) c->disorder++; c->last_id = id; return; }
    if (!strncmp(l, "event:", 6)) { c->is_glint = strstr(l, "glint_emission") != NULL; return; }
    if (c->is_glint && !strncmp(l, "data:", 5)) {
        char *p = strstr(l, "\"bench_ts\":");
        if (!p) return;
        double ts = strtod(p + 11, NULL);
        char *q = strstr(l, "\"bench_i\":");
        long i = q ? strtol(q + 10, NULL, 10) : -1;
        if (i >= 0 && i < maxposts) { if (c->seen[i]) { c->dups++; return; } c->seen[i] = 1; }
        c->count++;
        if (nlat < caplat) lat[nlat++] = (tread - ts) * 1000.0;
    }
}

static void feed_sse(Conn *c, const char *b, long n) {
    for (long k = 0; k < n; k++) {
        char ch = b[k];
        if (ch == '\n') { on_line(c); c->llen = 0; }
        else if (c->llen < (int)sizeof c->line - 1) c->line[c->llen++] = ch;
    }
}

static void feed_body(Conn *c, const char *b, long n) {
    long k = 0;
    while (k < n) {
        if (c->state == PLAIN) { feed_sse(c, b + k, n - k); return; }
        if (c->state == CHUNK_SIZE) {
            char ch = b[k++];
            if (ch == '\n') { c->csz[c->cszlen] = 0; c->chunk_left = strtol(c->csz, NULL, 16); c->cszlen = 0;
                              c->state = c->chunk_left ? CHUNK_DATA : CHUNK_CRLF; }
            else if (ch != '\r' && c->cszlen < 30) c->csz[c->cszlen++] = ch;
        } else if (c->state == CHUNK_DATA) {
            long m = n - k < c->chunk_left ? n - k : c->chunk_left;
            feed_sse(c, b + k, m); k += m; c->chunk_left -= m;
            if (!c->chunk_left) c->state = CHUNK_CRLF;
        } else if (c->state == CHUNK_CRLF) {
            if (b[k++] == '\n') c->state = CHUNK_SIZE;
        }
    }
}

static void feed_sub(Conn *c, const char *b, long n) {
    if (c->state != HEAD) { feed_body(c, b, n); return; }
    long k = 0;
    while (k < n && c->state == HEAD) {
        if (c->hlen < (int)sizeof c->hdr - 1) c->hdr[c->hlen++] = b[k];
        k++;
        if (c->hlen >= 4 && !memcmp(c->hdr + c->hlen - 4, "\r\n\r\n", 4)) {
            c->hdr[c->hlen] = 0;
            for (char *p = c->hdr; *p; p++) if (*p >= 'A' && *p <= 'Z') *p += 32;
            c->chunked = strstr(c->hdr, "transfer-encoding: chunked") != NULL;
            c->state = c->chunked ? CHUNK_SIZE : PLAIN;
        }
    }
    if (k < n) feed_body(c, b + k, n - k);
}

/* publisher: read one response (headers + Content-Length body) per POST */
static void feed_pub(Conn *c, const char *b, long n, long *ok, long *bad) {
    for (long k = 0; k < n; k++) {
        if (c->chunk_left > 0) { c->chunk_left--; if (!c->chunk_left) goto done; continue; }
        if (c->hlen < (int)sizeof c->hdr - 1) c->hdr[c->hlen++] = b[k];
        if (c->hlen >= 4 && !memcmp(c->hdr + c->hlen - 4, "\r\n\r\n", 4)) {
            c->hdr[c->hlen] = 0;
            int good = !strncmp(c->hdr + 9, "2", 1);
            if (good) (*ok)++; else (*bad)++;
            for (char *p = c->hdr; *p; p++) if (*p >= 'A' && *p <= 'Z') *p += 32;
            char *cl = strstr(c->hdr, "content-length:");
            c->chunk_left = cl ? strtol(cl + 15, NULL, 10) : 0;
            c->hlen = 0;
            if (!c->chunk_left) goto done;
        }
        continue;
    done:
        c->busy = 0; c->hlen = 0; c->used_at = now();
        if (nplat < 1000000) plat[nplat++] = (now() - c->sent_at) * 1000.0;
    }
}

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1; setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connect(fd, (struct sockaddr *)&a, sizeof a);
    return fd;
}

static int cmpd(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return (x > y) - (x < y); }
static double pct(double *v, long n, double p) { if (!n) return -1; long i = (long)(p * n); if (i >= n) i = n - 1; return v[i]; }

static void sendall(int fd, const char *b, long n) {
    while (n > 0) { long w = write(fd, b, n); if (w < 0) { if (errno == EAGAIN) { usleep(100); continue; } return; } b += w; n -= w; }
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: ssefan PORT SUBS RATE DURATION [DRAIN] [STREAM] [POST] [PUBLISHERS]\n"); return 2; }
    int port = atoi(argv[1]), subs = atoi(argv[2]);
    double rate = atof(argv[3]), dur = atof(argv[4]), drain = argc > 5 ? atof(argv[5]) : 3;
    const char *spath = argc > 6 ? argv[6] : "/stream", *ppath = argc > 7 ? argv[7] : "/stream/glint";
    int npub = argc > 8 ? atoi(argv[8]) : 8;
    struct rlimit rl; getrlimit(RLIMIT_NOFILE, &rl); rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl);

    maxposts = rate > 0 ? (long)(rate * dur) + 16 : 2000000;
    caplat = subs ? maxposts * subs : 1; lat = malloc(sizeof(double) * caplat); plat = malloc(sizeof(double) * 1000000);
    int n = subs + npub;
    Conn *cs = calloc(n, sizeof(Conn));
    int ep = epoll_create1(0);
    char req[512];
    int rl_ = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n", spath);
    int *sent_req = calloc(n, sizeof(int));
    for (int i = 0; i < n; i++) {
        Conn *c = &cs[i]; c->pub = i >= subs; c->last_id = -1; if (!c->pub) c->seen = calloc(maxposts, 1);
        c->fd = dial(port); c->used_at = now();
        /* a subscriber sends its GET as soon as its connection is up (on loopback, usually at once):
           a server may close a connection that sends no request for a while (gunicorn: keepalive s) */
        long w = c->pub ? -1 : write(c->fd, req, rl_);
        if (w > 0) { if (w < rl_) sendall(c->fd, req + w, rl_ - w); sent_req[i] = 1; }
        struct epoll_event e = { .events = EPOLLIN | (sent_req[i] ? 0 : EPOLLOUT) | EPOLLRDHUP, .data.ptr = c };
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
        if (i % 200 == 199) usleep(20000);
    }
    /* connect phase: send the other GETs as sockets become writable, wait until every subscriber saw
       headers */
    static char buf[1 << 20];
    struct epoll_event evs[1024];
    double t_conn = now();
    long ok = 0, bad = 0;
    int last_heads = -1; double t_prog = now();
    for (;;) {
        int heads = 0, sent = 0;
        for (int i = 0; i < subs; i++) { heads += cs[i].state != HEAD; sent += sent_req[i]; }
        if (heads != last_heads) { last_heads = heads; t_prog = now(); }
        /* some servers send no headers until the first event: go on once every request is out and
           nothing has changed for 2 s */
        if (heads == subs || (sent == subs && now() - t_prog > 2) || now() - t_conn > 30) break;
        int k = epoll_wait(ep, evs, 1024, 50);
        tread = now();
        for (int j = 0; j < k; j++) {
            Conn *c = evs[j].data.ptr; int idx = c - cs;
            if ((evs[j].events & EPOLLOUT) && !sent_req[idx]) {
                sent_req[idx] = 1;
                if (!c->pub) sendall(c->fd, req, rl_);
                struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
            }
            if (evs[j].events & EPOLLIN) {
                long r = read(c->fd, buf, sizeof buf);
                if (r > 0) { if (c->pub) feed_pub(c, buf, r, &ok, &bad); else feed_sub(c, buf, r); }
                else if (r == 0) { c->closed = 1; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); }
            }
        }
    }
    int connected = 0; for (int i = 0; i < subs; i++) connected += cs[i].state != HEAD;
    /* publishers whose first EPOLLOUT the connect phase did not handle (always, with no subscribers):
       stop watching for writability, or every epoll_wait returns at once and the client spins */
    for (int i = subs; i < n; i++) if (!sent_req[i]) {
        struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = &cs[i] };
        epoll_ctl(ep, EPOLL_CTL_MOD, cs[i].fd, &e);
    }
    usleep(500000);
    const char *phases[] = {"inhale", "hold", "exhale", "return", "night_hold"};
    double t0 = now(), interval = rate > 0 ? 1.0 / rate : 0, end_pub = t0 + dur, end_all = end_pub + drain;
    long posted = 0, late = 0, queued = 0; int rr = 0, draining = 0;
    /* phase markers on stderr, so that a caller can measure the server over the publishing window */
    fprintf(stderr, "ssefan: publishing\n");
    for (;;) {
        double t = now();
        if (t >= end_all) break;
        if (!draining && t >= end_pub) { draining = 1; fprintf(stderr, "ssefan: draining\n"); }
        if (rate <= 0) { if (t < end_pub) for (int j = 0; j < npub; j++) if (!cs[subs + j].busy && !cs[subs + j].closed) queued++; }
        else while (t < end_pub && t0 + (posted + queued) * interval <= t) queued++;
        while (queued > 0) {
            Conn *p = NULL;
            for (int j = 0; j < npub; j++) {
                Conn *c = &cs[subs + (rr + j) % npub];
                /* the server closed an idle keep-alive connection, or may be closing it (gunicorn does after
                   `keepalive` seconds, 2 in Spiral's config; a POST written as it closes would be lost):
                   dial again */
                if (!c->busy && (c->closed || now() - c->used_at > 1.0)) {
                    close(c->fd); c->fd = dial(port); c->closed = 0; c->hlen = 0; c->chunk_left = 0; c->used_at = now();
                    struct epoll_event e = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
                    struct timespec w = { 0, 2000000 }; nanosleep(&w, NULL);
                }
                if (!c->busy && !c->closed) { p = c; rr = (rr + j + 1) % npub; break; }
            }
            if (!p) { if (rate > 0) late++; else queued = 0; break; }
            char body[512], msg[1024];
            int bl = snprintf(body, sizeof body, "{\"module\":\"bench.mod%ld\",\"phase\":\"%s\",\"context\":{\"bench_ts\":%.6f,\"bench_i\":%ld}}",
                              posted % 7, phases[posted % 5], now(), posted);
            int ml = snprintf(msg, sizeof msg, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", ppath, bl, body);
            p->busy = 1; p->sent_at = now(); sendall(p->fd, msg, ml);
            posted++; queued--;
        }
        double next = rate <= 0 ? (t < end_pub ? t + 0.05 : end_all) : (t < end_pub ? t0 + (posted + queued) * interval : end_all);
        int ms = (int)((next - now()) * 1000); if (ms < 0) ms = 0; if (ms > 50) ms = 50;
        /* posts are due but every publisher is waiting for an answer: wait for one (an answer wakes
           epoll at once) instead of spinning on a zero timeout */
        if (queued > 0) ms = 50;
        int k = epoll_wait(ep, evs, 1024, ms);
        tread = now();
        for (int j = 0; j < k; j++) {
            Conn *c = evs[j].data.ptr;
            if (!(evs[j].events & EPOLLIN)) continue;
            for (;;) {
                long r = read(c->fd, buf, sizeof buf);
                if (r > 0) { if (c->pub) feed_pub(c, buf, r, &ok, &bad); else feed_sub(c, buf, r); if (r < (long)sizeof buf) break; }
                else { if (r == 0) { c->closed = 1; epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); if (c->pub && c->busy) { c->busy = 0; bad++; } } break; }
            }
        }
    }
    fprintf(stderr, "ssefan: done\n");
    double pub_s = dur;
    long delivered = 0, disorder = 0, dups = 0, full = 0, closed = 0;
    for (int i = 0; i < subs; i++) { delivered += cs[i].count; disorder += cs[i].disorder; dups += cs[i].dups; full += cs[i].count == posted; closed += cs[i].closed; }
    qsort(lat, nlat, sizeof(double), cmpd); qsort(plat, nplat, sizeof(double), cmpd);
    /* SSEFAN_LATENCIES=FILE: every delivery latency (ms, sorted doubles), for a caller that merges
       several clients' figures into one percentile */
    const char *dump = getenv("SSEFAN_LATENCIES");
    if (dump) { FILE *f = fopen(dump, "wb"); if (f) { fwrite(lat, sizeof(double), nlat, f); fclose(f); } }
    printf("{\"subscribers\": %d, \"connected\": %d, \"rate\": %.1f, \"posted\": %ld, \"post_ok\": %ld, \"post_errors\": %ld, \"late\": %ld, "
           "\"post_rate\": %.1f, \"expected\": %ld, \"delivered\": %ld, \"delivered_ratio\": %.4f, \"subs_with_all\": %ld, \"disorder\": %ld, \"dups\": %ld, \"subs_closed\": %ld, "
           "\"p50_ms\": %.2f, \"p95_ms\": %.2f, \"p99_ms\": %.2f, \"max_ms\": %.2f, \"post_p50_ms\": %.2f, \"post_p99_ms\": %.2f}\n",
           subs, connected, rate, posted, ok, bad, late, posted / pub_s, posted * subs, delivered,
           (posted && subs) ? (double)delivered / (posted * subs) : 0, full, disorder, dups, closed,
           pct(lat, nlat, .5), pct(lat, nlat, .95), pct(lat, nlat, .99), pct(lat, nlat, 1), pct(plat, nplat, .5), pct(plat, nplat, .99));
    return 0;
}
