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

/* `dtrain inspect`'s check, on one process, without data, MPI collectives or side effects: sets t
 * up with the modules that hold resumable state for a run of cfg on net (net built from cfg's
 * model for the checkpoint's input shape), registers the state table, reads r into its staging
 * and validates it as a resume would: the checkpoint belongs to cfg's model, data and optimizer,
 * every item is present with its dtype and shape, values are in range and the items agree with
 * each other (not checked: what only a run knows, its data size and world size). Returns 0 or
 * DT_ERR (one message naming the file and the item); either way t->state then lists the items
 * (staged values where read) until dt_trainer_check_free(t). */
int dt_trainer_check_file(dt_trainer *t, const dt_config *cfg, dt_net *net, dt_ck_reader *r);
void dt_trainer_check_free(dt_trainer *t);

/* ---- for train.c ---- */

/* The modules that hold resumable state, for t->cfg and t->net: the optimizer (weight decay per
 * tensor), SWA, the loss scaler, rank 0's epoch history. Not collective: 0 or DT_ERR. */
int dt_train_init_state_modules(dt_trainer *t);

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
/* Adds the checkpoint attribute "cwd": the directory the run runs in, against which `dtrain
 * eval` resolves the relative data paths of the checkpoint's configuration. */
void dt_train_attr_cwd(dt_ck_writer *w);

#endif
