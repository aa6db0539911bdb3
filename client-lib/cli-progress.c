/*
 * cli-progress.c — the hconn command's progress meter. curl's default
 * meter shows bytes, rate and, with a known length, percentage and time
 * left; -# draws a bar of '#' instead. The line is redrawn in place with
 * '\r' and ended with a newline when the transfer ends, on stderr only,
 * so the body's bytes are never mixed with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli-progress.h"

#define PROGRESS_INTERVAL 0.2 /* seconds between redraws */

/* Monotonic seconds. */
static double
progress_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

bool
progress_wanted(bool silent, bool to_file)
{
    return !silent && isatty(STDERR_FILENO) &&
           (to_file || !isatty(STDOUT_FILENO));
}

void
progress_start(struct progress *p, bool on, bool bar, bool upload,
               int64_t total)
{
    *p = (struct progress){
        .on = on,
        .bar = bar,
        .upload = upload,
        .start = progress_now(),
        .total = total,
    };
}

/* Writes n bytes as "1023 B", "12.3 KiB", "4.5 MiB", ... into buf. */
static void
progress_size(char *buf, size_t len, double n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;

    while (n >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        n /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%.0f %s", n, units[u]);
    else
        snprintf(buf, len, "%.1f %s", n, units[u]);
}

/* Writes seconds as h:mm:ss into buf. */
static void
progress_time(char *buf, size_t len, double s)
{
    long t = s < 0 ? 0 : s > 3.6e8 ? 360000000L : (long)(s + 0.5);

    snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

/* The terminal's width, 80 when unknown. */
static int
progress_columns(void)
{
    struct winsize ws;

    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

/* Draws the current line. */
static void
progress_draw(struct progress *p, double now)
{
    double spent = now - p->start;
    double rate = spent > 0 ? p->done / spent : 0;
    char done[32], total[32], speed[32], left[48];

    progress_size(done, sizeof(done), (double)p->done);
    progress_size(speed, sizeof(speed), rate);
    if (p->bar) {
        int width = progress_columns() - 9;
        int filled;

        if (p->total <= 0) {
            fprintf(stderr, "\r%-*s %s", width, "#", done);
        } else {
            double frac = (double)p->done / (double)p->total;

            filled = (int)(frac * width + 0.5);
            if (filled > width)
                filled = width;
            fprintf(stderr, "\r%.*s%*s %5.1f%%", filled,
                    "##########################################"
                    "##########################################"
                    "##########################################"
                    "##########################################"
                    "##########################################",
                    width - filled, "", frac * 100);
        }
    } else if (p->total >= 0) {
        double frac = p->total ? (double)p->done / (double)p->total : 1;

        progress_size(total, sizeof(total), (double)p->total);
        progress_time(left, sizeof(left),
                      rate > 0 ? ((double)p->total - p->done) / rate : -1);
        fprintf(stderr, "\r%s %5.1f%% %10s of %-10s %10s/s  %s left  ",
                p->upload ? "upload  " : "download", frac * 100, done, total,
                speed, rate > 0 ? left : "-:--:--");
    } else {
        progress_time(left, sizeof(left), spent);
        fprintf(stderr, "\r%s %10s %10s/s  %s spent  ",
                p->upload ? "upload  " : "download", done, speed, left);
    }
    fflush(stderr);
    p->drawn = true;
    p->last = now;
}

void
progress_add(struct progress *p, uint64_t n)
{
    double now;

    p->done += n;
    if (!p->on)
        return;
    now = progress_now();
    if (now - p->last >= PROGRESS_INTERVAL)
        progress_draw(p, now);
}

void
progress_end(struct progress *p)
{
    if (!p->on)
        return;
    progress_draw(p, progress_now());
    fputc('\n', stderr);
    fflush(stderr);
    p->on = false;
}
