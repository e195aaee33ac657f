/*
 * ckpt_dir.h - a directory of checkpoints: DIR/ckpt-step%08lld.h5 files written by dt_ck_commit
 * (ckpt.h), their temporary files DIR/.ckpt-stepN.h5.tmp.PID, finding the newest one that
 * verifies and pruning old ones.
 */
#ifndef DT_CKPT_DIR_H
#define DT_CKPT_DIR_H

#include <stddef.h>
#include <stdint.h>

/* Writes "DIR/ckpt-step00001234.h5" (at least 8 digits) into out. Returns 0, or DT_ERR when it
 * does not fit in n bytes. */
int dt_ck_step_path(char *out, size_t n, const char *dir, int64_t step);

/* One checkpoint file found in a directory. */
typedef struct dt_ck_entry {
    int64_t step;
    char name[64]; /* "ckpt-step00001234.h5", without the directory */
} dt_ck_entry;

/* Lists the files named ckpt-step<digits>.h5 in dir (nothing else: temporary files start with a
 * '.'), sorted by increasing step. Returns the count with *out a malloc'd array (free()), or 0 with
 * *out = NULL when there is none or dir does not exist, or DT_ERR (unreadable dir). Nothing is
 * opened or verified. */
int dt_ck_scan_dir(const char *dir, dt_ck_entry **out);

/* Finds the newest checkpoint in dir that verifies (dt_ck_open), trying from the highest step
 * down. Returns 1 with its path in out_path (n bytes) and its step in *step (may be NULL); 0 when
 * there is none that verifies (out_path = ""); DT_ERR when dir cannot be read or out_path is too
 * small. Each newer file that failed is reported in `report` (m bytes, may be NULL), one line per
 * file, "skipped DIR/ckpt-step00000300.h5: checksum mismatch in model/fc1.weight (...)\n"; the
 * report is "" when nothing was skipped and is cut short (ending in "...\n") when m is too
 * small. */
int dt_ck_find_latest(const char *dir, char *out_path, size_t n, int64_t *step, char *report,
                      size_t m);
/* The same, but a checkpoint counts only when it also passes accept(r, ctx) (called with the
 * verified, open reader; returns 0 to take it, or DT_ERR after recording one message, which the
 * report gives as the reason for skipping it): semantic validation by the caller. */
struct dt_ck_reader;
int dt_ck_find_latest_if(const char *dir, char *out_path, size_t n, int64_t *step, char *report,
                         size_t m, int (*accept)(struct dt_ck_reader *r, void *ctx), void *ctx);

/* Keeps the `keep` (>= 1) newest checkpoints of dir by step and deletes the older ones, but never
 * deletes the newest one that passes a cheap check (its dtrain header is intact and the file has
 * the size written; no data is read), so a run whose newer files were damaged still has one to
 * resume from. Call it right after a successful dt_ck_commit. Also removes leftover temporary
 * files (".ckpt-stepN.h5.tmp.PID" of another process) whose step is not above the newest
 * checkpoint's. Returns the number of files deleted, or DT_ERR (keep < 1, dir unreadable, unlink
 * failed) naming the path. */
int dt_ck_prune(const char *dir, int keep);

#endif
