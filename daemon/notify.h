/*
 * notify.h — readiness and status for the service manager: the sd_notify
 * datagram protocol, spoken without libsystemd. Every call does nothing
 * when $NOTIFY_SOCKET is unset, so hconnd runs the same way by hand.
 */
#ifndef HCONND_NOTIFY_H
#define HCONND_NOTIFY_H

/*
 * Sends state (newline-separated VAR=value assignments) to $NOTIFY_SOCKET
 * in one datagram; a leading '@' names an abstract socket. Returns 1 when
 * sent, 0 when $NOTIFY_SOCKET is unset, or a negative HCONN_E... code.
 */
int notify_send(const char *state);

/* READY=1 with STATUS= set from the printf-style format: the daemon
 * serves from now on. Also ends a reload begun with notify_reloading. */
void notify_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* STATUS= alone: a one-line summary the service manager shows. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* RELOADING=1 (with MONOTONIC_USEC=, as Type=notify-reload wants): a
 * reload begins; follow it with notify_ready once it is done or refused. */
void notify_reloading(void);

/* STOPPING=1: the graceful stop began (no new clients; in-flight
 * responses drain). */
void notify_stopping(void);

#endif
