/*
 * policy.h — who may reach what through hconnd: rules parsed from the
 * "policy" key of the config file, matched to a client by its peer
 * credentials, and checked against each request (scheme, host, port,
 * proxy, TLS options) and each address its host resolves to. Pure: no
 * I/O, no clock, no libevent.
 */
#ifndef HCONND_POLICY_H
#define HCONND_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <jansson.h>

/* Destination address classes a rule may refuse (see policy_addr_class;
 * the whole table is in policy.c and hconnd.json(5)). */
enum policy_addr_class {
    POLICY_ADDR_PUBLIC = 0,         /* anything else */
    POLICY_ADDR_LOOPBACK = 1 << 0,  /* 127/8, 0/8, ::1, ::, and the
                                       machine's own addresses */
    POLICY_ADDR_PRIVATE = 1 << 1,   /* 10/8, 172.16/12, 192.168/16,
                                       100.64/10, fc00::/7, and the other
                                       special-purpose ranges */
    POLICY_ADDR_LINK_LOCAL = 1 << 2 /* 169.254/16, fe80::/10 */
};

/* The machine's own addresses (localaddr.c keeps them current). */
struct policy_own_addrs {
    struct sockaddr_storage *addrs;
    size_t n;
};

struct policy_ports {
    uint16_t lo, hi; /* inclusive */
};

/* One rule. A list left out of a rule is taken from the default rule
 * (parent); a boolean left out is copied from it when parsed. */
struct policy_rule {
    char name[96];                    /* "rules[2] \"builders\"", "default" */
    const struct policy_rule *parent; /* the default rule; NULL for it */
    uid_t *uids;                      /* matches these uids ... */
    size_t nuids;
    gid_t *gids; /* ... or these primary gids */
    size_t ngids;
    bool has_schemes, has_hosts, has_ports, has_proxies; /* lists given */
    bool http, https;                                    /* "schemes" */
    char **hosts; /* "hosts": "name", "*.suffix" or "*" */
    size_t nhosts;
    struct policy_ports *ports; /* "ports" */
    size_t nports;
    char **proxies; /* "proxies": "hostpattern:port", port may be "*";
                       "*": any */
    size_t nproxies;
    unsigned deny_addr; /* POLICY_ADDR_* classes refused */
    bool insecure_tls;  /* may turn certificate verification off */
    bool client_certs;  /* may present a client certificate */
    bool tls_files;     /* a client other than root may name TLS files
                           (opened with its own rights) */

    /* May choose the source address and port ("source_address"). */
    bool source_address;
    /* may turn the certificate name check off */
    bool no_check_hostname;
};

struct policy {
    struct policy_rule def; /* "default", or the built-in allow-all */
    struct policy_rule *rules;
    size_t nrules;
};

/* What a request asks for, as policy_check_request sees it. */
struct policy_request {
    bool tls;               /* https */
    const char *host;       /* the origin */
    uint16_t port;          /* the origin's */
    const char *proxy_host; /* the tunnel's proxy; NULL: direct */
    uint16_t proxy_port;
    bool proxy_is_default; /* the daemon's own default proxy */
    bool insecure;         /* certificate verification off */
    bool client_cert;      /* a client certificate (file or inline) */
    bool tls_files;        /* TLS path fields, from a client not root */
    /* the certificate's name not checked */
    bool no_check_hostname;
};

/* A rule's address classes in a small value that a connection attempt
 * can copy and outlive a reload with. */
struct policy_addr_filter {
    unsigned deny;                      /* POLICY_ADDR_* refused */
    const struct policy_own_addrs *own; /* count as loopback; NULL: none */
    char rule[96];                      /* the rule's name, for messages */
    char key[128]; /* deny and rule as text: equal filters, equal keys */
};

/* The built-in policy (no config file, or no "policy" key): one default
 * rule that allows everything. Returns NULL when out of memory. */
struct policy *policy_new_default(void);

/* Parses the value of the "policy" key. Returns the policy, or NULL with
 * err naming the key and rule ("policy.rules[1].ports[0]: ..."). */
struct policy *policy_parse(const json_t *value, char *err, size_t errlen);

void policy_free(struct policy *p);

/* The first rule that lists uid or gid, else the default rule; p NULL:
 * the built-in allow-all rule. */
const struct policy_rule *policy_match(const struct policy *p, uid_t uid,
                                       gid_t gid);

/* False when r lets requests reach anything (schemes, hosts, ports,
 * proxies and address classes all unrestricted). */
bool policy_restricts_destinations(const struct policy_rule *r);

/* Checks everything about req that is known before resolving. Returns 0,
 * or HCONN_EDENIED with why naming the rule and what it refused. */
int policy_check_request(const struct policy_rule *rule,
                         const struct policy_request *req, char *why,
                         size_t len);

/* Checks a request's "source_address" (host "" for any, port 0 for any)
 * against rule; uid is the client's: a port below 1024 is refused to all
 * but root, whatever the rule, since the daemon would bind it with its
 * own privilege. Returns 0, or HCONN_EDENIED with why set. */
int policy_check_source(const struct policy_rule *rule, const char *host,
                        uint16_t port, uid_t uid, char *why, size_t len);

/* The class of a resolved address by the table alone (an IPv6 address
 * embedding an IPv4 one counts as that). */
enum policy_addr_class policy_addr_class(const struct sockaddr *sa);

/* Fills f with rule's address limits; false when it refuses none (f is
 * then not worth reading). */
bool policy_addr_filter(const struct policy_rule *rule,
                        struct policy_addr_filter *f);

/* Checks one resolved address against f. Returns 0, or HCONN_EDENIED
 * with why naming the rule and the address. */
int policy_check_address(const struct policy_addr_filter *f,
                         const struct sockaddr *sa, char *why, size_t len);

/* policy_check_address as the pool's address check callback (arg: a
 * struct policy_addr_filter). */
int policy_check_address_cb(const struct sockaddr *sa, const void *arg,
                            char *why, size_t len);

#endif
