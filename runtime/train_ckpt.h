/*
 * train_ckpt.h - the trainer's checkpoints (train_ckpt.c; train.h includes this header): the
 * public save and model read, and what train.c calls at init (state table, resume).
 */
#ifndef DT_TRAIN_CKPT_H
#define DT_TRAIN_CKPT_H

#include <stdint.h>
#include <string.h>

#include "ckpt.h"
#include "net.h"
#include "trainer.h"

/* ---- public ---- */

/* Writes a checkpoint of the current state (rank 0 writes, all ranks call). Collective. */
int dt_trainer_checkpoint(dt_trainer *t, const char *why);
/* Reads a checkpoint's model tensors and buffers (items model/<state_dict key>, shapes checked)
 * into net->param and net->state. Not collective. Returns 0 or DT_ERR (message names the file
 * and the item). */
int dt_read_model(dt_ck_reader *r, dt_net *net);

/* ---- for train.c ---- */

/* A folder setting (ckpt.dir, log.dir) other than "none". */
static inline int dt_train_has_dir(const char *s) { return strcmp(s, "none") != 0; }

/* Registers the trainer's resumable state in t->state (every module's items, then its own). */
void dt_train_register_state(dt_trainer *t);
/* With ckpt.resume set: rank 0 loads the checkpoint, every rank receives its state. Collective:
 * 0 (*resumed: 1 when a checkpoint was loaded) or DT_ERR on every rank. */
int dt_train_resume(dt_trainer *t, int *resumed);

/* Adds the model's tensors (model/<state_dict key>, float32 from param) and buffers to w. */
void dt_train_add_model(dt_ck_writer *w, const dt_net *net, const float *param);
/* Adds a scalar int64 item. */
void dt_train_add_i64(dt_ck_writer *w, const char *name, int64_t v);

#endif
