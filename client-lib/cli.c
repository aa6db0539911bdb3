/*
 * cli.c — the hconn command: a small curl-like client on libhconn.
 *
 *   hconn [options] URL
 *
 * One request per run. On failure it prints one line, "hconn: <error
 * name>: <detail>", and exits with the error's code negated (HCONN_E...),
 * so scripts can tell a DNS failure from a truncated body or an HTTP error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli-progress.h"
#include "cli-redirect.h"
#include "hconn-build.h"
#include "hconn.h"
#include "url.h"
#include "wire.h"

#define CLI_CHUNK (64 * 1024) /* body bytes per read */
/* Bodies above this size ask for 100-continue, as curl's do. */
#define CLI_EXPECT_THRESHOLD (1024 * 1024)

/* A body to send; for now always in memory. */
struct cli_body {
    char *data; /* malloc'd, NULL for no body */
    size_t len; /* bytes in data */
};

/* Everything the command line asks for. */
struct cli {
    const char *method;           /* -X, else derived */
    struct hconn_header *headers; /* -H fields, names/values malloc'd */
    size_t nheaders;
    char **header_bufs;      /* the mutable copies the fields point in */
    struct cli_body body;    /* -d / --data-binary parts joined */
    bool has_data;           /* some -d / --data-binary was given */
    const char *data_file;   /* --data-binary @FILE alone: streamed from
                                FILE ("-": stdin) instead of body */
    const char *upload;      /* -T FILE ("-": stdin), streamed */
    int expect;              /* 100-continue: 1 asked by -H, 0 refused by
                                -H 'Expect:', -1 by size (as curl) */
    double expect_timeout;   /* --expect100-timeout, seconds */
    bool include;            /* -i */
    bool head_only;          /* -I */
    const char *output;      /* -o FILE, NULL for stdout */
    bool fail;               /* -f */
    bool verbose;            /* -v */
    bool silent;             /* -s */
    double timeout;          /* -m */
    const char *socket_path; /* --socket */
    bool stats;              /* --stats: print hconnd's figures */
    bool json;               /* --json: --stats as its JSON line */
    bool location;           /* -L: follow redirects */
    long max_redirs;         /* --max-redirs, -1: no limit */
    bool progress_bar;       /* -#: a bar rather than figures */
    bool auto_content_type;  /* the Content-Type field was added for -d */
    const char *url;         /* the URL operand */
    char *cacert;            /* --cacert FILE, absolute, malloc'd */
    char *capath;            /* --capath DIR, absolute, malloc'd */
    char *cert;              /* --cert FILE, absolute, malloc'd */
    char *key;               /* --key FILE, absolute, malloc'd */
    bool insecure;           /* -k */
    bool tlsv13;             /* --tlsv1.3 */
    int http_version;        /* --http1.1 / --http2: HCONN_HTTP_... */
    const char *proxy;       /* -x URL: tunnel through it with CONNECT */
    const char *proxy_user;  /* --proxy-user USER:PASSWORD */
    struct hconn_header *proxy_headers; /* --proxy-header fields */
    size_t nproxy_headers;
    char **proxy_header_bufs;

    char interface[64]; /* --interface ADDR, brackets dropped */
    int local_port;     /* --local-port N */
};

/* Where the body goes, opened on first use. */
struct cli_out {
    const char *path; /* -o FILE, NULL for stdout */
    FILE *fp;         /* NULL until opened */
    bool wrote;       /* something was written */
};

static const char cli_usage[] =
    "Usage: hconn [options] URL\n"
    "       hconn [--socket PATH] --stats\n"
    "Fetch an http:// or https:// URL through hconnd, the local HTTP/1.1\n"
    "connection pool, and write the response body to standard output.\n"
    "\n"
    "Options:\n"
    "  -X, --request METHOD     request method (default GET, POST with -d)\n"
    "  -H, --header 'Name: value'  add a request header field (repeatable)\n"
    "  -d, --data DATA          send DATA as a form body (repeatable, joined\n"
    "                           with '&'); @FILE reads FILE without its CR/LF\n"
    "                           bytes, @- reads standard input\n"
    "      --data-binary DATA   send DATA as is; @FILE streams FILE "
    "verbatim\n"
    "                           (@- standard input, sent chunked)\n"
    "  -T, --upload-file FILE   stream FILE as the body of a PUT (with -X,\n"
    "                           any method); - reads standard input, sent\n"
    "                           chunked\n"
    "      --expect100-timeout SECONDS  how long to wait for 100 Continue\n"
    "                           before sending the body anyway (default 1;\n"
    "                           hconnd's expect_timeout bounds it too)\n"
    "  -i, --include            print the status line and headers before "
    "the body\n"
    "  -I, --head               send HEAD and print the response head only\n"
    "  -o, --output FILE        write the body to FILE instead of stdout\n"
    "  -f, --fail               fail with http_error on status 400 or "
    "above,\n"
    "                           printing no body\n"
    "  -v, --verbose            show the request and response heads on "
    "stderr\n"
    "  -s, --silent             print no error message and no progress\n"
    "                           meter (exit status only)\n"
    "  -m, --max-time SECONDS   timeout for the request (0 = none)\n"
    "  -L, --location           follow redirects (301, 302, 303, 307, 308),\n"
    "                           each hop a request through hconnd and its\n"
    "                           policy; 303, and 301/302 after a POST, go on\n"
    "                           as GET without the body; Authorization and\n"
    "                           Cookie fields are not sent to another origin\n"
    "      --max-redirs NUM     follow at most NUM redirects (default 50,\n"
    "                           -1 no limit)\n"
    "  -#, --progress-bar       show progress as a bar of '#'\n"
    "      --cacert FILE        verify the server with the CA certificates "
    "in\n"
    "                           FILE (PEM) instead of the system trust store\n"
    "      --capath DIR         same with a directory of hashed CA "
    "certificates\n"
    "                           (as made by openssl rehash)\n"
    "      --cert FILE          client certificate (PEM; holds the key too\n"
    "                           unless --key is given)\n"
    "      --key FILE           private key of the --cert certificate (PEM)\n"
    "  -k, --insecure           do not verify the server's certificate and "
    "name\n"
    "      --tlsv1.3            require TLS 1.3 (default: 1.2 or later)\n"
    "      --http1.1            use HTTP/1.1 only (default: https:// offers\n"
    "                           HTTP/2 and HTTP/1.1 and the server chooses)\n"
    "      --http2              use HTTP/2 only; for http:// URLs with prior\n"
    "                           knowledge (h2c)\n"
    "      --http2-prior-knowledge  the same as --http2\n"
    "  -x, --proxy [http://][USER:PASSWORD@]HOST[:PORT]\n"
    "                           tunnel through this HTTP proxy with CONNECT\n"
    "                           (port 1080 by default), for http:// and\n"
    "                           https:// URLs alike\n"
    "  -U, --proxy-user USER:PASSWORD  Basic credentials for the proxy\n"
    "      --proxy-header 'Name: value'  add a field to the CONNECT request\n"
    "                           (repeatable)\n"
    "      --interface ADDR     connect from this local IPv4 or IPv6 "
    "address\n"
    "                           (an address, not an interface name)\n"
    "      --local-port N       connect from this local port\n"
    "      --socket PATH        hconnd socket (default $HCONN_SOCKET, else\n"
    "                           $XDG_RUNTIME_DIR/hconnd.sock if present, "
    "else\n"
    "                           " HCONN_DEFAULT_SOCKET ")\n"
    "  -h, --help               show this help and exit\n"
    "      --stats              print hconnd's figures (one JSON line: "
    "clients,\n"
    "                           requests, pool per origin, reuse, TLS\n"
    "                           resumptions, errors by name, uptime) and "
    "exit;\n"
    "                           a readable summary when stdout is a terminal\n"
    "      --json               --stats as the JSON line, even on a terminal\n"
    "  -V, --version            show the version and exit\n"
    "\n"
    "-d and --data-binary imply POST and, unless -H gives one,\n"
    "Content-Type: application/x-www-form-urlencoded.\n"
    "Bodies over 1 MiB or of unknown length are sent with Expect:\n"
    "100-continue, as curl does; -H 'Expect:' turns that off. An upload\n"
    "stops as soon as the server has answered (or the request failed).\n"
    "\n"
    "A URL without \"scheme://\" is http://, as in curl. With -o, or when\n"
    "standard output is not a terminal, a progress meter (bytes, rate and,\n"
    "when the length is known, percentage and time left) goes to standard\n"
    "error if that is a terminal; -s turns it off.\n"
    "\n"
    "https:// URLs are verified by default (system trust store, host name,\n"
    "SNI). The TLS options apply to https:// URLs and are ignored for\n"
    "http:// ones. hconnd, not this command, opens the files: they must be\n"
    "readable by hconnd too; relative names are made absolute first.\n"
    "\n"
    "Exit status: 0 after a complete response. On failure one line\n"
    "\"hconn: <error>: <detail>\" goes to stderr and the exit status is the\n"
    "error's HCONN_E... code negated (e.g. 12 incomplete_read, 25\n"
    "daemon_unavailable, 29 http_error with -f); a body cut short is always\n"
    "a failure, even after output started, flagged \"hconn: body incomplete\n"
    "after N bytes: ...\".\n";

/* Prints "hconn: <name>: <detail>" unless silent; returns the exit status
 * for code. */
static int cli_error(const struct cli *o, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
cli_error(const struct cli *o, int code, const char *fmt, ...)
{
    va_list ap;

    if (!o->silent) {
        fprintf(stderr, "hconn: %s: ", hconn_error_name(code));
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    return -code;
}

/* Reads all of path ("-" = stdin) into *buf, *len. Returns 0 or -errno. */
static int
cli_read_file(const char *path, char **buf, size_t *len)
{
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = CLI_CHUNK, n = 0;
    char *p = NULL;
    int e = 0;

    if (!fp)
        return -errno;
    for (;;) {
        char *bigger;
        size_t got;

        if (!p || cap - n < CLI_CHUNK) {
            cap = p ? cap * 2 : cap;
            bigger = realloc(p, cap);
            if (!bigger) {
                e = ENOMEM;
                break;
            }
            p = bigger;
        }
        got = fread(p + n, 1, cap - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp))
                e = errno ? errno : EIO;
            break;
        }
    }
    if (fp != stdin)
        fclose(fp);
    if (e) {
        free(p);
        return -e;
    }
    *buf = p;
    *len = n;
    return 0;
}

/* Adds one -d / --data-binary argument to the body. Returns 0 or an exit
 * status. */
static int
cli_add_data(struct cli *o, const char *arg, bool binary)
{
    char *part = NULL, *joined;
    size_t plen = 0;
    int rc;

    if (o->upload)
        return cli_error(o, HCONN_EINVALID_ARGUMENT,
                         "-T and -d/--data-binary are mutually exclusive");
    if (binary && arg[0] == '@' && !o->has_data) {
        /* Alone, it is streamed; joined with more it goes in memory. */
        o->data_file = arg + 1;
        o->has_data = true;
        return 0;
    }
    if (o->data_file) {
        const char *first = o->data_file;

        o->data_file = NULL;
        rc = cli_read_file(first, &o->body.data, &o->body.len);
        if (rc < 0)
            return cli_error(o, HCONN_EIO_ERROR, "cannot read %s: %s", first,
                             strerror(-rc));
    }
    if (arg[0] == '@') {
        rc = cli_read_file(arg + 1, &part, &plen);

        if (rc < 0)
            return cli_error(o, HCONN_EIO_ERROR, "cannot read %s: %s", arg + 1,
                             strerror(-rc));
        if (!binary) { /* curl's -d @file drops CR and LF */
            size_t k = 0;

            for (size_t i = 0; i < plen; i++)
                if (part[i] != '\r' && part[i] != '\n')
                    part[k++] = part[i];
            plen = k;
        }
    } else {
        plen = strlen(arg);
    }
    joined =
        realloc(o->body.data, o->body.len + (o->has_data ? 1 : 0) + plen + 1);
    if (!joined) {
        free(part);
        return cli_error(o, HCONN_ENO_MEMORY, "out of memory");
    }
    if (o->has_data)
        joined[o->body.len++] = '&';
    memcpy(joined + o->body.len, part ? part : arg, plen);
    o->body.len += plen;
    o->body.data = joined;
    o->has_data = true;
    free(part);
    return 0;
}

/* Takes a --cacert/--capath/--cert/--key argument: checks that it can be
 * read (dir: a directory) and stores it in *slot made absolute, since
 * hconnd opens it from another working directory. The last one given
 * wins. Returns 0 or an exit status. */
static int
cli_tls_path(struct cli *o, const char *arg, bool dir, char **slot)
{
    int fd = open(arg, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    struct stat st;
    char *path;
    int e = 0;

    if (fd < 0)
        e = errno;
    else if (!dir && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        e = EISDIR;
    if (fd >= 0)
        close(fd);
    if (e)
        return cli_error(o, HCONN_EIO_ERROR, "cannot read %s: %s", arg,
                         strerror(e));
    path = arg[0] == '/' ? strdup(arg) : realpath(arg, NULL);
    if (!path)
        return errno == ENOMEM
                   ? cli_error(o, HCONN_ENO_MEMORY, "out of memory")
                   : cli_error(o, HCONN_EIO_ERROR, "cannot read %s: %s", arg,
                               strerror(errno));
    free(*slot);
    *slot = path;
    return 0;
}

/* Adds one 'Name: value' argument of option opt to the fields in *list
 * (*n of them, each pointing into its own malloc'd copy in *copies).
 * Returns 0 or an exit status. */
static int
cli_add_field(struct cli *o, const char *opt, const char *arg,
              struct hconn_header **list, size_t *n, char ***copies)
{
    char *buf = strdup(arg), *colon, *value, *end;
    struct hconn_header *h;
    char **bufs;

    if (!buf)
        return cli_error(o, HCONN_ENO_MEMORY, "out of memory");
    colon = strchr(buf, ':');
    if (!colon || colon == buf) {
        free(buf);
        return cli_error(o, HCONN_EINVALID_HEADER,
                         "%s '%s': expected 'Name: value'", opt, arg);
    }
    *colon = '\0';
    value = colon + 1;
    value += strspn(value, " \t");
    end = value + strlen(value);
    while (end > value && strchr(" \t\r\n", end[-1]))
        *--end = '\0';
    h = realloc(*list, (*n + 1) * sizeof(*h));
    if (h)
        *list = h;
    bufs = realloc(*copies, (*n + 1) * sizeof(*bufs));
    if (bufs)
        *copies = bufs;
    if (!h || !bufs) {
        free(buf);
        return cli_error(o, HCONN_ENO_MEMORY, "out of memory");
    }
    (*list)[*n] = (struct hconn_header){buf, value};
    (*copies)[(*n)++] = buf;
    return 0;
}

/* Adds one -H 'Name: value'. Returns 0 or an exit status. */
static int
cli_add_header(struct cli *o, const char *arg)
{
    return cli_add_field(o, "-H", arg, &o->headers, &o->nheaders,
                         &o->header_bufs);
}

/* Whether a -H field named name was given. */
static bool
cli_has_header(const struct cli *o, const char *name)
{
    for (size_t i = 0; i < o->nheaders; i++)
        if (strcasecmp(o->headers[i].name, name) == 0)
            return true;
    return false;
}

/* Removes the i-th -H field. */
static void
cli_remove_header_at(struct cli *o, size_t i)
{
    free(o->header_bufs[i]);
    memmove(o->headers + i, o->headers + i + 1,
            (o->nheaders - i - 1) * sizeof(*o->headers));
    memmove(o->header_bufs + i, o->header_bufs + i + 1,
            (o->nheaders - i - 1) * sizeof(*o->header_bufs));
    o->nheaders--;
}

/* Applies -H 'Expect: ...': 'Expect:' (empty, curl's way of removing a
 * field) turns 100-continue off and is not sent; 'Expect: 100-continue'
 * turns it on for any body. */
static void
cli_take_expect(struct cli *o)
{
    for (size_t i = 0; i < o->nheaders; i++) {
        if (strcasecmp(o->headers[i].name, "Expect") != 0)
            continue;
        if (o->headers[i].value[0] == '\0') {
            o->expect = 0;
            cli_remove_header_at(o, i--);
        } else if (strcasecmp(o->headers[i].value, "100-continue") == 0) {
            o->expect = 1;
        }
    }
}

/* Frees what parsing allocated. */
static void
cli_free(struct cli *o)
{
    for (size_t i = 0; i < o->nheaders; i++)
        free(o->header_bufs[i]);
    free(o->header_bufs);
    free(o->headers);
    for (size_t i = 0; i < o->nproxy_headers; i++)
        free(o->proxy_header_bufs[i]);
    free(o->proxy_header_bufs);
    free(o->proxy_headers);
    free(o->body.data);
    free(o->cacert);
    free(o->capath);
    free(o->cert);
    free(o->key);
}

/* --interface ADDR: an address literal ("[v6]" taken too); libhconn and
 * hconnd check it further. */
static int
cli_interface(struct cli *o, const char *arg)
{
    size_t n = strlen(arg);

    if (n >= 2 && arg[0] == '[' && arg[n - 1] == ']') {
        arg++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(o->interface))
        return cli_error(o, HCONN_EINVALID_ARGUMENT,
                         "--interface '%s': expected an IPv4 or IPv6 address",
                         arg);
    memcpy(o->interface, arg, n);
    o->interface[n] = '\0';
    return 0;
}

/* Parses the command line. Returns 0 to go on, or an exit status (-1 for
 * a clean exit 0 after --help / --version). */
static int
cli_parse(struct cli *o, int argc, char **argv)
{
    enum {
        OPT_DATA_BINARY = 256,
        OPT_SOCKET,
        OPT_CACERT,
        OPT_CAPATH,
        OPT_CERT,
        OPT_KEY,
        OPT_TLSV13,
        OPT_PROXY_HEADER,
        OPT_EXPECT100_TIMEOUT,
        OPT_STATS,
        OPT_JSON,
        OPT_MAX_REDIRS,
        OPT_INTERFACE,
        OPT_LOCAL_PORT,
        OPT_HTTP1_1,
        OPT_HTTP2,
    };
    static const struct option longopts[] = {
        {"request", required_argument, NULL, 'X'},
        {"header", required_argument, NULL, 'H'},
        {"data", required_argument, NULL, 'd'},
        {"data-binary", required_argument, NULL, OPT_DATA_BINARY},
        {"upload-file", required_argument, NULL, 'T'},
        {"expect100-timeout", required_argument, NULL, OPT_EXPECT100_TIMEOUT},
        {"include", no_argument, NULL, 'i'},
        {"head", no_argument, NULL, 'I'},
        {"output", required_argument, NULL, 'o'},
        {"fail", no_argument, NULL, 'f'},
        {"verbose", no_argument, NULL, 'v'},
        {"silent", no_argument, NULL, 's'},
        {"max-time", required_argument, NULL, 'm'},
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"capath", required_argument, NULL, OPT_CAPATH},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"insecure", no_argument, NULL, 'k'},
        {"tlsv1.3", no_argument, NULL, OPT_TLSV13},
        {"http1.1", no_argument, NULL, OPT_HTTP1_1},
        {"http2", no_argument, NULL, OPT_HTTP2},
        {"http2-prior-knowledge", no_argument, NULL, OPT_HTTP2},
        {"proxy", required_argument, NULL, 'x'},
        {"proxy-user", required_argument, NULL, 'U'},
        {"proxy-header", required_argument, NULL, OPT_PROXY_HEADER},
        {"stats", no_argument, NULL, OPT_STATS},
        {"json", no_argument, NULL, OPT_JSON},
        {"location", no_argument, NULL, 'L'},
        {"max-redirs", required_argument, NULL, OPT_MAX_REDIRS},
        {"progress-bar", no_argument, NULL, '#'},
        {"interface", required_argument, NULL, OPT_INTERFACE},
        {"local-port", required_argument, NULL, OPT_LOCAL_PORT},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int ch, rc;
    char *end;

    opterr = 0;
    o->expect = -1;
    o->expect_timeout = 1.0;
    o->max_redirs = 50; /* curl's default */
    while ((ch = getopt_long(argc, argv, ":X:H:d:T:iIo:fvsm:kx:U:hVL#",
                             longopts, NULL)) != -1) {
        rc = 0;
        switch (ch) {
        case 'X':
            o->method = optarg;
            break;
        case 'H':
            rc = cli_add_header(o, optarg);
            break;
        case 'd':
            rc = cli_add_data(o, optarg, false);
            break;
        case OPT_DATA_BINARY:
            rc = cli_add_data(o, optarg, true);
            break;
        case 'T':
            if (o->has_data)
                rc = cli_error(o, HCONN_EINVALID_ARGUMENT,
                               "-T and -d/--data-binary are mutually "
                               "exclusive");
            o->upload = optarg;
            break;
        case OPT_EXPECT100_TIMEOUT:
            errno = 0;
            o->expect_timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->expect_timeout >= 0) ||
                o->expect_timeout > 86400)
                rc = cli_error(o, HCONN_EINVALID_ARGUMENT,
                               "--expect100-timeout '%s': expected seconds "
                               "from 0 to 86400",
                               optarg);
            break;
        case 'i':
            o->include = true;
            break;
        case 'I':
            o->head_only = true;
            break;
        case 'o':
            o->output = optarg;
            break;
        case 'f':
            o->fail = true;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 's':
            o->silent = true;
            break;
        case 'm':
            errno = 0;
            o->timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(o->timeout >= 0))
                rc = cli_error(o, HCONN_EINVALID_ARGUMENT,
                               "-m '%s': expected seconds >= 0", optarg);
            break;
        case OPT_SOCKET:
            o->socket_path = optarg;
            break;
        case OPT_CACERT:
            rc = cli_tls_path(o, optarg, false, &o->cacert);
            break;
        case OPT_CAPATH:
            rc = cli_tls_path(o, optarg, true, &o->capath);
            break;
        case OPT_CERT:
            rc = cli_tls_path(o, optarg, false, &o->cert);
            break;
        case OPT_KEY:
            rc = cli_tls_path(o, optarg, false, &o->key);
            break;
        case 'k':
            o->insecure = true;
            break;
        case OPT_TLSV13:
            o->tlsv13 = true;
            break;
        case OPT_HTTP1_1:
            o->http_version = HCONN_HTTP_1_1;
            break;
        case OPT_HTTP2:
            o->http_version = HCONN_HTTP_2;
            break;
        case 'x':
            o->proxy = optarg;
            break;
        case 'U':
            o->proxy_user = optarg;
            break;
        case OPT_INTERFACE:
            rc = cli_interface(o, optarg);
            break;
        case OPT_LOCAL_PORT:
            errno = 0;
            o->local_port = (int)strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o->local_port < 1 ||
                o->local_port > 65535)
                rc = cli_error(o, HCONN_EINVALID_ARGUMENT,
                               "--local-port '%s': expected a port from 1 to "
                               "65535",
                               optarg);
            break;
        case OPT_PROXY_HEADER:
            rc = cli_add_field(o, "--proxy-header", optarg, &o->proxy_headers,
                               &o->nproxy_headers, &o->proxy_header_bufs);
            break;
        case OPT_STATS:
            o->stats = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case 'L':
            o->location = true;
            break;
        case '#':
            o->progress_bar = true;
            break;
        case OPT_MAX_REDIRS:
            errno = 0;
            o->max_redirs = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || o->max_redirs < -1)
                rc = cli_error(o, HCONN_EINVALID_ARGUMENT,
                               "--max-redirs '%s': expected a count, or -1 "
                               "for no limit",
                               optarg);
            break;
        case 'h':
            fputs(cli_usage, stdout);
            return -1;
        case 'V':
            printf("hconn %s (libhconn, wire protocol %d)\n", HCONN_VERSION,
                   WIRE_VERSION);
            return -1;
        case ':':
            if (strncmp(argv[optind - 1], "--", 2) != 0)
                return cli_error(o, HCONN_EINVALID_ARGUMENT,
                                 "option -%c needs an argument (see --help)",
                                 optopt);
            return cli_error(o, HCONN_EINVALID_ARGUMENT,
                             "option %s needs an argument (see --help)",
                             argv[optind - 1]);
        default:
            if (strncmp(argv[optind - 1], "--", 2) != 0)
                return cli_error(o, HCONN_EINVALID_ARGUMENT,
                                 "unknown option -%c (see --help)", optopt);
            return cli_error(o, HCONN_EINVALID_ARGUMENT,
                             "unknown option %s (see --help)",
                             argv[optind - 1]);
        }
        if (rc)
            return rc;
    }
    if (o->stats && optind == argc)
        return 0;
    if (optind != argc - 1)
        return cli_error(o, HCONN_EINVALID_ARGUMENT,
                         optind == argc ? "no URL given (see --help)"
                                        : "more than one URL given");
    o->url = argv[optind];
    if (o->insecure && (o->cacert || o->capath))
        return cli_error(o, HCONN_EINVALID_ARGUMENT,
                         "-k and %s are contradictory: -k turns "
                         "verification off",
                         o->cacert ? "--cacert" : "--capath");
    if (o->key && !o->cert)
        return cli_error(o, HCONN_EINVALID_ARGUMENT, "--key needs --cert");
    if ((o->proxy_user || o->nproxy_headers) && !o->proxy)
        return cli_error(o, HCONN_EINVALID_ARGUMENT, "%s needs -x",
                         o->proxy_user ? "--proxy-user" : "--proxy-header");
    if (o->has_data && !cli_has_header(o, "Content-Type")) {
        rc = cli_add_header(o, "Content-Type: "
                               "application/x-www-form-urlencoded");
        if (rc)
            return rc;
        o->auto_content_type = true;
    }
    cli_take_expect(o);
    if (o->upload || o->data_file) {
        const char *path = o->upload ? o->upload : o->data_file;
        int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
            return cli_error(o, HCONN_EIO_ERROR, "cannot read %s: %s", path,
                             strerror(errno));
        if (fd > 0)
            close(fd);
    }
    if (!o->method)
        o->method = o->head_only  ? "HEAD"
                    : o->upload   ? "PUT"
                    : o->has_data ? "POST"
                                  : "GET";
    return 0;
}

/* Whether any TLS option was given. */
static bool
cli_has_tls_options(const struct cli *o)
{
    return o->cacert || o->capath || o->cert || o->key || o->insecure ||
           o->tlsv13;
}

/* Copies the TLS options into opts (https only) and, with -v, says what
 * they do. */
static void
cli_tls_options(const struct cli *o, const struct url *u,
                struct hconn_options *opts)
{
    if (!u->tls) {
        if (o->verbose && cli_has_tls_options(o))
            fprintf(stderr, "* TLS options ignored: not an https:// URL\n");
        return;
    }
    opts->ca_file = o->cacert;
    opts->ca_path = o->capath;
    opts->cert_file = o->cert;
    opts->key_file = o->key;
    opts->min_version = o->tlsv13 ? "1.3" : NULL;
    opts->insecure = o->insecure;
    if (!o->verbose)
        return;
    if (o->insecure)
        fprintf(stderr, "* TLS verification off (-k)\n");
    if (o->cacert)
        fprintf(stderr, "* TLS CA file: %s\n", o->cacert);
    if (o->capath)
        fprintf(stderr, "* TLS CA directory: %s\n", o->capath);
    if (o->cert)
        fprintf(stderr, "* TLS client certificate: %s\n", o->cert);
    if (o->key)
        fprintf(stderr, "* TLS client key: %s\n", o->key);
    if (o->tlsv13)
        fprintf(stderr, "* TLS 1.3 required\n");
}

/* Prints the request head as hconnd will send it (http.client's rules for
 * Host, Accept-Encoding and Content-Length) to stderr. */
static void
cli_verbose_request(const struct cli *o, const struct url *u,
                    const char *hostport)
{
    fprintf(stderr, "> %s %s HTTP/1.1\r\n", o->method, u->target);
    if (!cli_has_header(o, "Host"))
        fprintf(stderr, "> Host: %s\r\n", hostport);
    if (!cli_has_header(o, "Accept-Encoding"))
        fprintf(stderr, "> Accept-Encoding: identity\r\n");
    for (size_t i = 0; i < o->nheaders; i++)
        fprintf(stderr, "> %s: %s\r\n", o->headers[i].name,
                o->headers[i].value);
    if ((o->upload || o->data_file) && !cli_has_header(o, "Content-Length") &&
        !cli_has_header(o, "Transfer-Encoding")) {
        const char *path = o->upload ? o->upload : o->data_file;
        struct stat st;

        if (strcmp(path, "-") != 0 && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode))
            fprintf(stderr, "> Content-Length: %lld\r\n",
                    (long long)st.st_size);
        else
            fprintf(stderr, "> Transfer-Encoding: chunked\r\n");
    } else if (!cli_has_header(o, "Content-Length") &&
               !cli_has_header(o, "Transfer-Encoding")) {
        if (o->has_data)
            fprintf(stderr, "> Content-Length: %zu\r\n", o->body.len);
        else if (!strcmp(o->method, "POST") || !strcmp(o->method, "PUT") ||
                 !strcmp(o->method, "PATCH"))
            fprintf(stderr, "> Content-Length: 0\r\n");
    }
    fprintf(stderr, "> \r\n");
}

/* Writes the status line and header fields, each line prefixed. */
static void
cli_write_head(FILE *fp, const char *prefix, hconn_response *r)
{
    const struct hconn_header *h;
    size_t n = hconn_response_getheaders(r, &h);

    fprintf(fp, "%sHTTP/%s %d %s\r\n", prefix,
            hconn_response_version(r) == 10   ? "1.0"
            : hconn_response_version(r) == 20 ? "2"
                                              : "1.1",
            hconn_response_status(r), hconn_response_reason(r));
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%s%s: %s\r\n", prefix, h[i].name, h[i].value);
    fprintf(fp, "%s\r\n", prefix);
}

/* Opens the output on first use. Returns it, or NULL with errno set. */
static FILE *
cli_out_open(struct cli_out *out)
{
    if (!out->fp)
        out->fp = out->path ? fopen(out->path, "wb") : stdout;
    return out->fp;
}

/* Monotonic seconds. */
static double
cli_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits up to --expect100-timeout for hconnd's verdict on 100-continue,
 * with libhconn's non-blocking calls and poll(2). *send_body: true to go
 * on (continue, or the wait ran out: the body goes anyway, as curl's),
 * false when the final response came first. Returns 0 or a code. */
static int
cli_wait_continue(hconn *c, const struct cli *o, bool *send_body)
{
    double deadline = cli_now() + o->expect_timeout;
    int rc = hconn_set_blocking(c, false);

    *send_body = true;
    while (rc == 0 || rc == HCONN_EWOULD_BLOCK) {
        struct pollfd pfd = {.fd = hconn_fileno(c), .events = hconn_events(c)};
        double left = deadline - cli_now();
        int n;

        rc = hconn_wait_continue(c, send_body);
        if (rc != HCONN_EWOULD_BLOCK)
            break;
        *send_body = true;
        if (left <= 0) {
            if (o->verbose)
                fprintf(stderr,
                        "* no 100 Continue within %g s: sending the "
                        "body\n",
                        o->expect_timeout);
            rc = 0;
            break;
        }
        pfd.events = hconn_events(c);
        n = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            rc = HCONN_EIO_ERROR;
        else if (n > 0)
            rc = hconn_process(c);
    }
    if (rc == 0 || rc < 0) {
        int brc = hconn_set_blocking(c, true);

        if (rc == 0)
            rc = brc;
    }
    if (rc == 0 && o->verbose)
        fprintf(stderr, "* %s\n",
                *send_body ? "sending the body"
                           : "final response before the body: not sent");
    return rc;
}

/* Opens the file a streamed body comes from ("-": stdin) and sets *length
 * to its size when it is a regular file, else -1 (sent chunked). Returns
 * the descriptor or -errno. */
static int
cli_open_body(const char *path, int64_t *length)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO
                                    : open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;

    *length = -1;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        off_t pos = lseek(fd, 0, SEEK_CUR);

        *length = (int64_t)st.st_size - (pos > 0 ? (int64_t)pos : 0);
    }
    return fd;
}

/* Whether a progress meter may be drawn for this run. */
static bool
cli_progress_wanted(const struct cli *o)
{
    return progress_wanted(o->silent, o->output != NULL);
}

/* Sends length bytes (-1: to its end) read from fd as the open streamed
 * body, drawing the upload meter. Returns 0 or a code; stops with
 * HCONN_ECANNOT_SEND_REQUEST once the request is answered. */
static int
cli_send_fd(hconn *c, const struct cli *o, int fd, int64_t length)
{
    static char buf[CLI_CHUNK];
    struct progress meter;
    int64_t sent = 0;
    int rc = 0;

    progress_start(&meter, cli_progress_wanted(o), o->progress_bar, true,
                   length);
    while (length < 0 || sent < length) {
        size_t want = length >= 0 && length - sent < (int64_t)sizeof(buf)
                          ? (size_t)(length - sent)
                          : sizeof(buf);
        ssize_t n = read(fd, buf, want);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};

            poll(&pfd, 1, -1);
            continue;
        }
        if (n < 0) {
            rc = HCONN_EIO_ERROR;
            fprintf(stderr, "hconn: reading the body: %s\n", strerror(errno));
            break;
        }
        if (n == 0) {
            if (length >= 0) {
                rc = HCONN_EBODY_LENGTH;
                fprintf(stderr,
                        "hconn: the body ended after %lld of %lld bytes\n",
                        (long long)sent, (long long)length);
            }
            break;
        }
        rc = hconn_send(c, buf, (size_t)n);
        if (rc < 0)
            break;
        sent += n;
        progress_add(&meter, (uint64_t)n);
    }
    progress_end(&meter);
    return rc;
}

/* Streams a -T / --data-binary @FILE body from path. Returns 0 or a code
 * (negative; an exit status was not printed yet). An upload the server
 * answered before its end stops there: that is said, and the answer is
 * read as usual. */
static int
cli_send_stream(hconn *c, const struct cli *o, const struct url *u,
                const char *path)
{
    int64_t length;
    bool send_body = true;
    unsigned flags = 0;
    int fd = cli_open_body(path, &length), rc;

    if (fd < 0) {
        fprintf(stderr, "hconn: cannot read %s: %s\n", path, strerror(-fd));
        return HCONN_EIO_ERROR;
    }
    if (o->expect == 1 ||
        (o->expect < 0 && (length < 0 || length > CLI_EXPECT_THRESHOLD)))
        flags |= HCONN_EXPECT_CONTINUE;
    rc = hconn_request_stream(c, o->method, u->target, o->headers, o->nheaders,
                              length, flags);
    if (rc == 0 && (flags & HCONN_EXPECT_CONTINUE) && length != 0)
        rc = cli_wait_continue(c, o, &send_body);
    if (rc == 0 && send_body && length != 0)
        rc = cli_send_fd(c, o, fd, length);
    if (rc == HCONN_ECANNOT_SEND_REQUEST) {
        /* The request has its answer (or its error) already. */
        if (!o->silent)
            fprintf(stderr, "hconn: upload stopped: %s\n", hconn_errmsg(c));
        rc = 0;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    return rc;
}

/* Sends the request: a -T / --data-binary @FILE body streamed, any other
 * body from memory. Returns 0 or a code. */
static int
cli_send(hconn *c, const struct cli *o, const struct url *u)
{
    const char *body = NULL;
    const char *path = o->upload ? o->upload : o->data_file;
    struct hconn_header *fields = o->headers;
    size_t n = o->nheaders;
    int rc;

    if (path)
        return cli_send_stream(c, o, u, path);
    if (o->has_data)
        body = o->body.data ? o->body.data : "";
    if (!body || o->expect != -1 || o->body.len <= CLI_EXPECT_THRESHOLD)
        return hconn_request(c, o->method, u->target, body, o->body.len,
                             o->headers, o->nheaders);
    /* A big in-memory body: hconnd holds it until the origin's 100. */
    fields = calloc(n + 1, sizeof(*fields));
    if (!fields)
        return HCONN_ENO_MEMORY;
    if (n > 0)
        memcpy(fields, o->headers, n * sizeof(*fields));
    fields[n++] = (struct hconn_header){"Expect", "100-continue"};
    rc = hconn_request(c, o->method, u->target, body, o->body.len, fields, n);
    free(fields);
    return rc;
}

/* Makes c for u: straight to the origin, or with -x to the proxy with a
 * tunnel to the origin (http.client's set_tunnel). Returns 0 or an exit
 * status; *c is set whenever it was allocated. */
static int
cli_connect(const struct cli *o, const struct url *u, const char *authority,
            const struct hconn_options *opts, hconn **c)
{
    struct url_proxy px;
    struct hconn_header *fields;
    char err[256], pxauthority[URL_HOST_MAX + 3];
    size_t n = o->nproxy_headers;
    int rc;

    if (!o->proxy) {
        rc = hconn_new(c, authority, u->port, opts);
        return rc < 0 ? cli_error(o, rc, "%s",
                                  *c ? hconn_errmsg(*c) : "out of memory")
                      : 0;
    }
    rc = url_parse_proxy(o->proxy, &px, err, sizeof(err));
    if (rc == 0 && o->proxy_user)
        rc = url_basic_credentials(o->proxy_user, strlen(o->proxy_user),
                                   px.authorization);
    if (rc < 0)
        return cli_error(o, rc, "-x '%s': %s", o->proxy,
                         o->proxy_user ? "user and password too long" : err);
    snprintf(pxauthority, sizeof(pxauthority),
             strchr(px.host, ':') ? "[%s]" : "%s", px.host);
    rc = hconn_new(c, pxauthority, px.port, opts);
    if (rc < 0)
        return cli_error(o, rc, "%s", *c ? hconn_errmsg(*c) : "out of memory");
    if (!(fields = calloc(n + 1, sizeof(*fields))))
        return cli_error(o, HCONN_ENO_MEMORY, "out of memory");
    if (n > 0)
        memcpy(fields, o->proxy_headers, n * sizeof(*fields));
    if (px.authorization[0] != '\0')
        fields[n++] =
            (struct hconn_header){"Proxy-Authorization", px.authorization};
    rc = hconn_set_tunnel(*c, authority, u->port, fields, n);
    free(fields);
    if (rc < 0)
        return cli_error(o, rc, "%s", hconn_errmsg(*c));
    if (o->verbose)
        fprintf(stderr, "* tunnel through proxy %s:%u\n", pxauthority, px.port);
    return 0;
}

/* Sends the request for URL url and gets the response head: *c and *r
 * are set on success. Returns 0 or an exit status (the error printed);
 * *c is set whenever it was allocated. */
static int
cli_exchange(struct cli *o, const char *url, hconn **c, hconn_response **r)
{
    struct hconn_options opts = {0};
    char err[256], hostport[URL_HOST_MAX + 16], authority[URL_HOST_MAX + 3];
    struct url u;
    int rc, status;
    bool v6;

    *c = NULL;
    *r = NULL;
    rc = url_parse(url, &u, err, sizeof(err));
    if (rc < 0)
        return cli_error(o, rc, "%s", err);
    v6 = strchr(u.host, ':') != NULL;
    snprintf(authority, sizeof(authority), v6 ? "[%s]" : "%s", u.host);
    if (u.port != (u.tls ? 443 : 80))
        snprintf(hostport, sizeof(hostport), "%s:%u", authority, u.port);
    else
        snprintf(hostport, sizeof(hostport), "%s", authority);

    opts.socket_path = o->socket_path;
    opts.timeout = o->timeout;
    opts.tls = u.tls;
    opts.source_address = o->interface;
    opts.source_port = o->local_port;
    cli_tls_options(o, &u, &opts);
    status = cli_connect(o, &u, authority, &opts, c);
    if (status != 0)
        return status;
    if (o->http_version != HCONN_HTTP_AUTO &&
        (rc = hconn_set_http_version(*c, o->http_version)) < 0)
        return cli_error(o, rc, "%s", hconn_errmsg(*c));
    if (o->verbose)
        cli_verbose_request(o, &u, hostport);
    rc = cli_send(*c, o, &u);
    if (rc == 0)
        rc = hconn_getresponse(*c, r);
    if (rc < 0)
        return cli_error(o, rc, "%s",
                         rc == HCONN_ENO_MEMORY ? "out of memory"
                                                : hconn_errmsg(*c));
    if (o->verbose) {
        fprintf(stderr, "* %s\n",
                hconn_response_reused(*r) ? "reused pooled connection"
                                          : "new connection");
        cli_write_head(stderr, "< ", *r);
    }
    return 0;
}

/* Drops the -H fields called name. */
static void
cli_drop_header(struct cli *o, const char *name)
{
    for (size_t i = 0; i < o->nheaders; i++) {
        if (strcasecmp(o->headers[i].name, name) == 0)
            cli_remove_header_at(o, i--);
    }
}

/* Whether URLs a and b have the same origin (scheme, host, port). */
static bool
cli_same_origin(const char *a, const char *b)
{
    struct url ua, ub;
    char err[256];

    return url_parse(a, &ua, err, sizeof(err)) == 0 &&
           url_parse(b, &ub, err, sizeof(err)) == 0 && ua.tls == ub.tls &&
           ua.port == ub.port && strcasecmp(ua.host, ub.host) == 0;
}

/*
 * -L: after redirect response r (status) to *url, sets *url to the next
 * URL (malloc'd, the old one freed) and makes o's request the next one:
 * a GET without body after 303 (and 301/302 after a POST), no
 * Authorization or Cookie field for another origin. Returns 0 or an exit
 * status.
 */
static int
cli_redirect(struct cli *o, hconn_response *r, int status, char **url)
{
    const char *location = hconn_response_getheader(r, "Location", NULL);
    char *next = redirect_resolve(*url, location);

    if (!next)
        return cli_error(o, HCONN_ENO_MEMORY, "out of memory");
    if (strncasecmp(next, "http://", 7) != 0 &&
        strncasecmp(next, "https://", 8) != 0) {
        int rc = cli_error(o, HCONN_EINVALID_URL,
                           "redirect to \"%s\": only http:// and https:// "
                           "are followed",
                           next);
        free(next);
        return rc;
    }
    if (redirect_to_get(status, o->method)) {
        if (o->verbose)
            fprintf(stderr, "* %d: switching from %s to GET\n", status,
                    o->method);
        o->method = "GET";
        o->has_data = false;
        o->upload = o->data_file = NULL;
        free(o->body.data);
        o->body.data = NULL;
        o->body.len = 0;
        if (o->auto_content_type)
            cli_drop_header(o, "Content-Type");
        o->auto_content_type = false;
    } else if ((o->upload || o->data_file) &&
               strcmp(o->upload ? o->upload : o->data_file, "-") == 0) {
        free(next);
        return cli_error(o, HCONN_EINVALID_ARGUMENT,
                         "a %d redirect asks for the body again, but it was "
                         "read from standard input",
                         status);
    }
    if (!cli_same_origin(*url, next)) {
        if (o->verbose &&
            (cli_has_header(o, "Authorization") || cli_has_header(o, "Cookie")))
            fprintf(stderr, "* another origin: Authorization and Cookie "
                            "fields are not sent there\n");
        cli_drop_header(o, "Authorization");
        cli_drop_header(o, "Cookie");
    }
    if (o->verbose)
        fprintf(stderr, "* following the %d redirect to %s\n", status, next);
    free(*url);
    *url = next;
    return 0;
}

/* Writes the body of r to the output, with the download meter. Returns
 * the exit status. */
static int
cli_write_body(struct cli *o, hconn *c, hconn_response *r, struct cli_out *out)
{
    struct progress meter;
    unsigned long long body_bytes = 0;
    int status;

    progress_start(&meter, cli_progress_wanted(o) && !o->head_only,
                   o->progress_bar, false, hconn_response_length(r));
    for (;;) {
        static char buf[CLI_CHUNK];
        ssize_t n = hconn_response_read1(r, buf, sizeof(buf));

        if (n < 0) {
            progress_end(&meter);
            if (body_bytes > 0 && !o->silent)
                fprintf(stderr,
                        "hconn: body incomplete after %llu bytes: %s: %s%s%s\n",
                        body_bytes, hconn_error_name((int)n), hconn_errmsg(c),
                        out->path ? "; partial output in " : "",
                        out->path ? out->path : "");
            if (body_bytes > 0)
                status = (int)-n;
            else if (out->path && out->fp)
                status = cli_error(o, (int)n, "%s (partial output in %s)",
                                   hconn_errmsg(c), out->path);
            else
                status = cli_error(o, (int)n, "%s", hconn_errmsg(c));
            if (out->fp && out->fp != stdout)
                fclose(out->fp);
            else if (out->fp)
                fflush(out->fp);
            return status;
        }
        if (n == 0)
            break;
        if (!cli_out_open(out) ||
            fwrite(buf, 1, (size_t)n, out->fp) != (size_t)n) {
            progress_end(&meter);
            return -1;
        }
        out->wrote = true;
        body_bytes += (unsigned long long)n;
        progress_add(&meter, (uint64_t)n);
    }
    if (body_bytes > 0 || meter.total > 0)
        progress_end(&meter);
    return 0;
}

/* Runs the request, following redirects with -L; returns the exit
 * status. */
static int
cli_run(struct cli *o)
{
    struct cli_out out = {.path = o->output};
    hconn_response *r = NULL;
    hconn *c = NULL;
    char *url = redirect_default_scheme(o->url);
    long hops = 0;
    int status;

    if (!url)
        return cli_error(o, HCONN_ENO_MEMORY, "out of memory");
    for (;;) {
        status = cli_exchange(o, url, &c, &r);
        if (status != 0)
            goto done;
        if (!o->location || !redirect_status(hconn_response_status(r)) ||
            !hconn_response_getheader(r, "Location", NULL))
            break;
        if (o->max_redirs >= 0 && hops >= o->max_redirs) {
            status = cli_error(o, HCONN_ELIMIT_EXCEEDED,
                               "maximum (%ld) redirects followed "
                               "(--max-redirs)",
                               o->max_redirs);
            goto done;
        }
        hops++;
        if (o->include) { /* curl -iL shows every head */
            if (!cli_out_open(&out))
                goto write_failed;
            cli_write_head(out.fp, "", r);
            out.wrote = true;
        }
        status = cli_redirect(o, r, hconn_response_status(r), &url);
        if (status != 0)
            goto done;
        hconn_response_close(r);
        hconn_free(c);
        r = NULL;
        c = NULL;
    }
    if (o->fail && hconn_response_status(r) >= 400) {
        status = cli_error(o, HCONN_EHTTP_ERROR, "%d %s",
                           hconn_response_status(r), hconn_response_reason(r));
        goto done;
    }
    if (o->include || o->head_only) {
        if (!cli_out_open(&out))
            goto write_failed;
        cli_write_head(out.fp, "", r);
        out.wrote = true;
    }
    status = cli_write_body(o, c, r, &out);
    if (status < 0)
        goto write_failed;
    if (status > 0)
        goto done;
    hconn_free(c);
    c = NULL;
    free(url);
    if (!cli_out_open(&out))
        return cli_error(o, HCONN_EIO_ERROR, "cannot open %s: %s", out.path,
                         strerror(errno));
    if ((out.fp == stdout ? fflush(out.fp) : fclose(out.fp)) != 0)
        return cli_error(o, HCONN_EIO_ERROR, "writing %s: %s",
                         out.path ? out.path : "standard output",
                         strerror(errno));
    return 0;

write_failed:
    status = cli_error(
        o, HCONN_EIO_ERROR, "%s %s: %s", out.fp ? "writing" : "cannot open",
        out.path ? out.path : "standard output", strerror(errno));
    if (out.fp && out.fp != stdout)
        fclose(out.fp);
done:
    hconn_free(c);
    free(url);
    return status;
}

/* An integer field of obj, 0 when absent. */
static long long
cli_stat(json_t *obj, const char *key)
{
    return (long long)json_integer_value(json_object_get(obj, key));
}

/* --stats on a terminal: the figures of the stats reply, readable. Fields
 * this version does not know are listed at the end as they are. */
static void
cli_stats_summary(json_t *st)
{
    static const char *const known[] = {"op",
                                        "id",
                                        "uptime",
                                        "clients",
                                        "clients_total",
                                        "requests",
                                        "responses",
                                        "reuse_hits",
                                        "reuse_misses",
                                        "retries",
                                        "pool",
                                        "tls",
                                        "errors",
                                        NULL};
    json_t *pool = json_object_get(st, "pool");
    json_t *origins = json_object_get(pool, "origins");
    json_t *tls = json_object_get(st, "tls");
    json_t *errors = json_object_get(st, "errors");
    long long up = cli_stat(st, "uptime");
    long long hits = cli_stat(st, "reuse_hits");
    long long misses = cli_stat(st, "reuse_misses");
    const char *key;
    json_t *v;

    printf("hconnd: up %lldd %02lld:%02lld:%02lld\n", up / 86400,
           up / 3600 % 24, up / 60 % 60, up % 60);
    printf("clients:   %lld connected, %lld since start\n",
           cli_stat(st, "clients"), cli_stat(st, "clients_total"));
    printf("requests:  %lld, %lld responses, %lld retried\n",
           cli_stat(st, "requests"), cli_stat(st, "responses"),
           cli_stat(st, "retries"));
    printf("reuse:     %lld of %lld connections reused (%.1f%%)\n", hits,
           hits + misses,
           hits + misses ? 100.0 * (double)hits / (double)(hits + misses)
                         : 0.0);
    printf("pool:      %lld connections open, %lld idle\n",
           cli_stat(pool, "open"), cli_stat(pool, "idle"));
    json_object_foreach(origins, key, v)
    {
        printf("  %s: %lld idle, %lld busy, %lld connecting, %lld waiting\n",
               key, cli_stat(v, "idle"), cli_stat(v, "busy"),
               cli_stat(v, "connecting"), cli_stat(v, "waiting"));
    }
    printf("TLS:       %lld handshakes, %lld resumed\n",
           cli_stat(tls, "handshakes"), cli_stat(tls, "resumed"));
    printf("errors:   ");
    if (json_object_size(errors) == 0)
        printf(" none");
    json_object_foreach(errors, key, v)
    {
        printf(" %s %lld", key, (long long)json_integer_value(v));
    }
    printf("\n");
    json_object_foreach(st, key, v)
    {
        bool is_known = false;
        char *text;

        for (size_t i = 0; known[i]; i++)
            is_known |= strcmp(known[i], key) == 0;
        if (is_known)
            continue;
        text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%s: %s\n", key, text ? text : "?");
        free(text);
    }
}

/* --stats: one {"op":"stats"} on its own connection; the reply on
 * stdout, as received (the JSON line) unless stdout is a terminal and
 * --json was not given: then a readable summary. The socket is found as
 * libhconn finds it. */
static int
cli_stats(struct cli *o)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    const char *env = getenv("HCONN_SOCKET"), *xdg = getenv("XDG_RUNTIME_DIR");
    static const char req[] = "{\"op\":\"stats\"}\n";
    char buf[16384], *nl = NULL, *line = NULL;
    size_t total = 0;
    ssize_t got;
    int fd;

    if (o->socket_path != NULL)
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", o->socket_path);
    else if (env != NULL && *env != '\0')
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", env);
    else if (xdg != NULL && *xdg != '\0' &&
             snprintf(sun.sun_path, sizeof sun.sun_path, "%s/hconnd.sock",
                      xdg) > 0 &&
             access(sun.sun_path, F_OK) == 0)
        ;
    else
        snprintf(sun.sun_path, sizeof sun.sun_path, "%s", HCONN_DEFAULT_SOCKET);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
        write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        if (fd >= 0)
            close(fd);
        return cli_error(o, HCONN_EDAEMON_UNAVAILABLE, "%s: %s", sun.sun_path,
                         strerror(errno));
    }
    /* The reply is one line, of any length: keep it up to its newline. */
    while (nl == NULL && (got = read(fd, buf, sizeof buf)) > 0) {
        size_t keep;
        char *bigger;

        nl = memchr(buf, '\n', (size_t)got);
        keep = nl != NULL ? (size_t)(nl - buf) + 1 : (size_t)got;
        bigger = realloc(line, total + keep + 1);
        if (!bigger) {
            free(line);
            close(fd);
            return cli_error(o, HCONN_ENO_MEMORY, "out of memory");
        }
        line = bigger;
        memcpy(line + total, buf, keep);
        total += keep;
        line[total] = '\0';
    }
    close(fd);
    if (nl == NULL) {
        free(line);
        return cli_error(o, HCONN_EBAD_MESSAGE,
                         "%s: the stats reply ended after %zu bytes, "
                         "unfinished",
                         sun.sun_path, total);
    }
    if (!o->json && isatty(STDOUT_FILENO)) {
        json_t *st = json_loads(line, 0, NULL);

        if (json_is_object(st)) {
            cli_stats_summary(st);
            json_decref(st);
            free(line);
            return 0;
        }
        json_decref(st);
    }
    fwrite(line, 1, total, stdout);
    free(line);
    return 0;
}

/* Seeds jansson's hash tables with one getrandom() call: left to itself,
 * jansson opens, reads and closes /dev/urandom for its first object, three
 * system calls in a process that often lives for one request. Failing
 * that, jansson seeds itself as before. */
static void
cli_seed_json(void)
{
    uint32_t seed;

    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed &&
        seed != 0)
        json_object_seed(seed);
}

int
main(int argc, char **argv)
{
    struct cli o = {0};
    int status;

    cli_seed_json();
    status = cli_parse(&o, argc, argv);

    if (status == 0 && o.stats)
        status = cli_stats(&o);
    else if (status == 0)
        status = cli_run(&o);
    else if (status < 0)
        status = 0;
    cli_free(&o);
    return status;
}
