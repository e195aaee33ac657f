/*
 * timeline.h - log.timeline: a Chrome trace of where every rank's steps go (the JSON Object Format
 * of the Trace Event Format, which chrome://tracing, Perfetto and speedscope open), as Horovod's
 * timeline and torch.profiler's export_chrome_trace give.
 *
 * One process per rank (pid = rank), one row (tid) for the main thread's phases, nested: step >
 * control, data, forward, backward > one span per layer, allreduce wait, optimizer; and one row
 * per gradient bucket with its allreduce from MPI_Iallreduce to completion (as the progress hook
 * saw it). Evaluation and checkpoints are spans of their own. Times are microseconds since rank
 * 0 opened the timeline, every rank's clock shifted onto rank 0's (the same clock on rank 0's
 * host; elsewhere an offset measured once by ping-pong, keeping the round trip of least latency:
 * error below half of it).
 *
 * Bounded: the steps recorded are the first `steps` this process trains (a resumed run's first
 * is the step it resumed at) and, with every > 0, each every-th step after them; evaluation and checkpoint spans are all kept, up to 256. Each rank records into memory
 * allocated when the timeline opens (nothing in a step); at the end rank 0 gathers every rank's
 * events and writes the one file.
 */
#ifndef DT_TIMELINE_H
#define DT_TIMELINE_H

#include <mpi.h>
#include <stdint.h>

/* Rows of a rank: the main thread's phases, then one per bucket (bucket k: DT_TL_BUCKET + k). */
enum { DT_TL_MAIN = 1, DT_TL_BUCKET = 100 };

/* 1 while the current step is recorded (a plain int: the recording calls are guarded by it). */
extern int dt_tl_on;

/* Opens the timeline (collective): path is rank 0's output file (opened now, so a path that
 * cannot be written fails at start-up), steps/every the window (above), total_steps the run's
 * length and per_step the most spans a step records (both size the buffer). Returns 0, or DT_ERR
 * on rank 0 with a message naming the file (the caller agrees). */
int dt_tl_open(const char *path, int64_t steps, int64_t every, int64_t total_steps, int per_step,
               MPI_Comm comm);
/* The step about to run: sets dt_tl_on to whether it is in the window. */
void dt_tl_step(int64_t step);
/* Records [t0, t1] (dt_now seconds) on row tid when dt_tl_on: name is the phase ("forward"),
 * detail (NULL: none) what it ran on (a layer's name), arg a count shown with it (< 0: none).
 * name and detail must outlive the timeline. */
void dt_tl_span(const char *name, const char *detail, int tid, double t0, double t1, int64_t arg);
/* Records a span outside the step window (evaluation, checkpoint): always, up to 256. */
void dt_tl_mark(const char *name, double t0, double t1);
/* Gathers every rank's events and rank 0 writes the file (collective; no-op when not open).
 * Returns 0, or DT_ERR on rank 0 (a write error, naming the file). */
int dt_tl_close(MPI_Comm comm);

#endif
