/*
 * cli-progress.h — the hconn command's progress meter, as curl shows one:
 * on stderr when it is a terminal and the body does not go to it.
 */
#ifndef HCONN_CLI_PROGRESS_H
#define HCONN_CLI_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

/* One transfer's meter. */
struct progress {
    bool on;       /* drawing at all */
    bool bar;      /* -#: a bar instead of figures */
    bool upload;   /* counting bytes sent, not received */
    bool drawn;    /* a line is on the terminal (needs its newline) */
    double start;  /* monotonic seconds at the start */
    double last;   /* when the line was last drawn */
    int64_t total; /* expected bytes, -1 unknown */
    uint64_t done; /* bytes so far */
};

/* Whether a meter may be shown at all: not silent, stderr a terminal and
 * the body not written to it (-o, or stdout not a terminal). */
bool progress_wanted(bool silent, bool to_file);

/* Starts a meter for a transfer of total bytes (-1 unknown); on false
 * nothing is ever drawn. */
void progress_start(struct progress *p, bool on, bool bar, bool upload,
                    int64_t total);

/* Counts n more bytes; redraws at most five times a second. */
void progress_add(struct progress *p, uint64_t n);

/* Draws the final figures and ends the line, if anything was drawn or
 * the transfer is done. */
void progress_end(struct progress *p);

#endif
