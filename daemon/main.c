/*
 * main.c — hconnd: command line, set-up, the event loop, and an orderly
 * stop on SIGTERM/SIGINT (stop accepting, finish what is in flight up to
 * shutdown_timeout, close everything).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "drain.h"
#include "exchange.h"
#include "hconn-build.h"
#include "listener.h"
#include "localaddr.h"
#include "log.h"
#include "memory.h"
#include "notify.h"
#include "policy.h"
#include "pool.h"
#include "resolve.h"
#include "server.h"
#include "session.h"
#include "timeval.h"
#include "tls.h"
#include "tlsfiles_cache.h"
#include "uidstats.h"

static void
main_usage(FILE *f)
{
    fprintf(f,
            "usage: hconnd [-v]... [--socket PATH] [--config FILE]\n"
            "\n"
            "Local HTTP/1.1 connection-pooling daemon.\n"
            "\n"
            "  -s, --socket PATH   listen on PATH (default: %s)\n"
            "  -c, --config FILE   read settings from the JSON FILE (default:\n"
            "                      " CONFIG_DEFAULT_PATH " if it exists);\n"
            "                      SIGHUP reads it again\n"
            "  -v, --verbose       log more: -v requests, -vv connections\n"
            "  -h, --help          show this help\n"
            "  -V, --version       show the version\n",
            config_default_socket());
}

/* Every client and every upstream connection is a descriptor: raise the
 * soft limit to the hard one (as nginx's worker_rlimit_nofile would), and
 * say so when the configured limits could still run out of them. */
static void
main_raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    size_t need = cfg->max_clients + cfg->pool_max_total + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_warn("open file limit %llu is below max_clients + pool_max_total "
                 "(%zu); past it, new clients and connections fail",
                 (unsigned long long)rl.rlim_cur, need);
}

void
server_session_closed(struct server *srv)
{
    if (srv->shutting_down && srv->nsessions == 0)
        event_base_loopexit(srv->base, NULL);
}

/* How long the error lines of a drain that timed out may take to reach
 * clients that still read. */
#define MAIN_FAREWELL_SECONDS 1

static void
main_shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct server *srv = arg;
    struct session *s, *next;
    struct timeval tv = {.tv_sec = MAIN_FAREWELL_SECONDS};

    if (srv->drain_expired || srv->nsessions == 0) {
        event_base_loopexit(srv->base, NULL);
        return;
    }
    log_warn("%zu clients still busy after %g s; ending their requests",
             srv->nsessions, srv->cfg->shutdown_timeout);
    /* Every request still in flight gets an error line, never a bare
     * end of file; the sessions close once that is written. */
    srv->drain_expired = true;
    pool_stop(srv->pool); /* the waiters being ended need nothing new */
    TAILQ_FOREACH_SAFE(s, &srv->sessions, entry, next)
    session_abort_requests(s);
    evtimer_add(srv->shutdown_timer, &tv);
}

static void
main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    struct session *s, *next;
    struct timeval tv;

    if (srv->shutting_down) {
        log_info("second signal: stopping now");
        event_base_loopexit(srv->base, NULL);
        return;
    }
    log_notice("%s: stopping; draining %zu clients", strsignal((int)sig),
               srv->nsessions);
    srv->shutting_down = true;
    notify_stopping();
    listener_close(srv->listener);
    srv->listener = NULL;
    pool_close_idle(srv->pool);
    drain_stop_all(); /* responses nobody waits for hold nothing up */
    TAILQ_FOREACH_SAFE(s, &srv->sessions, entry, next)
    session_drain(s);
    if (srv->nsessions == 0) {
        event_base_loopexit(srv->base, NULL);
        return;
    }
    tv = timeval_of(srv->cfg->shutdown_timeout);
    srv->shutdown_timer = evtimer_new(srv->base, main_shutdown_timeout_cb, srv);
    if (srv->shutdown_timer != NULL)
        evtimer_add(srv->shutdown_timer, &tv);
}

/* --config, or NULL: CONFIG_DEFAULT_PATH when it exists (SIGHUP reads
 * it again, so a file created later is picked up). */
static const char *main_config_path;

/* The file to read, or NULL when there is none. */
static const char *
main_config_file(void)
{
    if (main_config_path != NULL)
        return main_config_path;
    return access(CONFIG_DEFAULT_PATH, F_OK) == 0 ? CONFIG_DEFAULT_PATH : NULL;
}

/* SIGHUP: settings and policy from the file again, all or nothing; a bad
 * file leaves everything running as it was. Sessions and exchanges read
 * srv->cfg when they act, so the new values apply from the next request
 * (the message line limit: from the next client). */
static void
main_reload_cb(evutil_socket_t sig, short what, void *arg)
{
    struct server *srv = arg;
    const char *path = main_config_file();
    struct proxy_defaults proxies;
    struct config next;
    char err[512];

    notify_reloading();
    if (path == NULL) {
        config_init(&next);
        free(next.socket_path);
        next.socket_path = strdup(srv->cfg->socket_path);
        if (srv->cfg->hosts_file != NULL)
            next.hosts_file = strdup(srv->cfg->hosts_file);
    } else if (config_reload(srv->cfg, &next, path, err, sizeof err) < 0) {
        log_error("SIGHUP: %s; keeping the running configuration", err);
        notify_ready("reload refused: %s", err);
        return;
    }
    if (proxy_defaults_load(&proxies, &next, err, sizeof err) < 0) {
        log_error("SIGHUP: %s: %s; keeping the running configuration",
                  path != NULL ? path : "environment", err);
        notify_ready("reload refused: %s", err);
        config_clear(&next);
        return;
    }
    config_clear(srv->cfg);
    *srv->cfg = next;
    proxy_defaults_clear(&srv->proxies);
    srv->proxies = proxies;
    /* Names and nameservers follow the files again; a hosts file that
     * cannot be read leaves the names known before. */
    if (resolve_reload(srv->resolver, err, sizeof err) < 0)
        log_error("SIGHUP: hosts_file: %s; keeping the previous names", err);
    log_notice("SIGHUP: reloaded %s (%zu policy rules)",
               path != NULL ? path : "the built-in defaults",
               srv->cfg->policy != NULL ? srv->cfg->policy->nrules : 0);
    notify_ready("reloaded %s", path != NULL ? path : "the built-in defaults");
}

int
main(int argc, char **argv)
{
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct config cfg;
    struct server srv = {0};
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    const char *socket_path = NULL, *config_path = NULL;
    char err[512];
    int opt, verbosity = 0, status = EXIT_FAILURE;

    while ((opt = getopt_long(argc, argv, "s:c:vhV", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            socket_path = optarg;
            break;
        case 'c':
            config_path = optarg;
            break;
        case 'v':
            verbosity++;
            break;
        case 'h':
            main_usage(stdout);
            return EXIT_SUCCESS;
        case 'V':
            printf("hconnd %s (wire protocol 1)\n", HCONN_VERSION);
            return EXIT_SUCCESS;
        default:
            main_usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        main_usage(stderr);
        return 2;
    }
    log_set_verbosity(verbosity);
    signal(SIGPIPE, SIG_IGN);
    memory_tune();

    config_init(&cfg);
    main_config_path = config_path;
    config_path = main_config_file();
    if (config_path == NULL)
        log_info("no %s; running on the built-in defaults",
                 CONFIG_DEFAULT_PATH);
    if (config_path != NULL &&
        config_load(&cfg, config_path, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    if (socket_path != NULL) {
        free(cfg.socket_path);
        cfg.socket_path = strdup(socket_path);
    }
    main_raise_fd_limit(&cfg);
    if (proxy_defaults_load(&srv.proxies, &cfg, err, sizeof err) < 0) {
        log_error("%s", err);
        goto out;
    }
    if (srv.proxies.http != NULL || srv.proxies.https != NULL)
        log_notice("default proxies: http %s:%u, https %s:%u, except %s",
                   srv.proxies.http ? srv.proxies.http->host : "none",
                   srv.proxies.http ? srv.proxies.http->port : 0,
                   srv.proxies.https ? srv.proxies.https->host : "none",
                   srv.proxies.https ? srv.proxies.https->port : 0,
                   srv.proxies.no_proxy ? srv.proxies.no_proxy : "none");

    TAILQ_INIT(&srv.sessions);
    srv.cfg = &cfg;
    srv.stats.started = time(NULL);
    srv.base = event_base_new();
    if (srv.base == NULL) {
        log_error("cannot set up the event loop");
        goto out;
    }
    if ((srv.resolver = resolve_new(srv.base, &cfg, err, sizeof err)) == NULL) {
        log_error("hosts_file: %s", err);
        goto out;
    }
    /* Before the socket exists: a client (or a test, or systemd) may send
     * SIGHUP or SIGTERM the moment it can connect, and the default action
     * of either would kill the daemon. */
    sigterm = evsignal_new(srv.base, SIGTERM, main_signal_cb, &srv);
    sigint = evsignal_new(srv.base, SIGINT, main_signal_cb, &srv);
    sighup = evsignal_new(srv.base, SIGHUP, main_reload_cb, &srv);
    if (sigterm == NULL || sigint == NULL || sighup == NULL ||
        evsignal_add(sigterm, NULL) < 0 || evsignal_add(sigint, NULL) < 0 ||
        evsignal_add(sighup, NULL) < 0) {
        log_error("cannot install signal handlers");
        goto out;
    }
    if (!session_flushes_init(&srv)) {
        log_error("out of memory");
        goto out;
    }
    srv.tls = tls_new(&cfg);
    srv.localaddr = localaddr_new(srv.base);
    srv.pool = pool_new(srv.base, srv.resolver, srv.tls, &cfg, &srv.stats);
    srv.listener = listener_open(&srv, cfg.socket_path, err, sizeof err);
    if (srv.tls == NULL || srv.localaddr == NULL || srv.pool == NULL ||
        srv.listener == NULL) {
        log_error("%s", srv.pool == NULL ? "out of memory" : err);
        goto out;
    }
    log_notice("listening on %s%s", listener_path(srv.listener),
               listener_activated(srv.listener) ? " (socket activation)" : "");
    notify_ready("listening on %s", listener_path(srv.listener));

    if (event_base_dispatch(srv.base) < 0) {
        log_error("event loop failed");
        goto out;
    }
    status = EXIT_SUCCESS;
    log_notice("stopped");

out:
    /* Tearing sessions down cancels their leases and drops their
     * connections; nothing may start new connects for the waiters of
     * sessions about to go too. */
    if (srv.pool != NULL)
        pool_stop(srv.pool);
    while (!TAILQ_EMPTY(&srv.sessions))
        session_free(TAILQ_FIRST(&srv.sessions));
    session_flushes_clear(&srv);
    drain_stop_all();
    listener_close(srv.listener);
    pool_free(srv.pool);
    tls_free(srv.tls);
    tlsfiles_cache_clear();
    localaddr_free(srv.localaddr);
    uidstats_free(srv.uidstats);
    if (sigterm != NULL)
        event_free(sigterm);
    if (sigint != NULL)
        event_free(sigint);
    if (sighup != NULL)
        event_free(sighup);
    if (srv.shutdown_timer != NULL)
        event_free(srv.shutdown_timer);
    memory_shutdown();
    exchange_spares_free();
    resolve_free(srv.resolver);
    if (srv.base != NULL)
        event_base_free(srv.base);
    proxy_defaults_clear(&srv.proxies);
    config_clear(&cfg);
    return status;
}
