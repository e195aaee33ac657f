/*
 * ckpt.h - the checkpoint container: named arrays and string attributes in one HDF5 file, written
 * by one process (rank 0), atomically, and verified on every read (ARCHITECTURE.md invariant 4: a
 * checkpoint on disk is either complete and verified or ignored, never half-written).
 *
 * The module knows nothing about the trainer: a caller adds arrays ("items") by name and commits.
 *
 * File layout (serial HDF5, file format of HDF5 1.8+, readable with h5py and h5dump):
 *   bytes [0, U)             the dtrain header, in HDF5's "user block" (which HDF5 skips; U is a
 *                            power of 2 >= 512): magic "DTRAINCK", file size, and XXH64 checksums
 *                            of every byte after it: one per dataset's raw data (located with
 *                            H5Dget_offset), one over all the rest (HDF5's metadata), one over
 *                            the header itself. Layout in ckpt.c. Written last, after H5Fclose.
 *   /                        root group; attributes, in the order they were added:
 *       <caller's>           variable-length UTF-8 strings ("config", "model", "seed", ...)
 *       format               "dtrain-checkpoint"             (string)
 *       format_version       1                               (int64)
 *       complete             1                               (int64, the last attribute)
 *   /<name>                  one contiguous, uncompressed dataset per item; a '/' in a name makes
 *                            groups ("model/fc1.weight" is dataset "fc1.weight" in group "model");
 *                            dots are ordinary characters. Types: float32/float64/int64 little-
 *                            endian, uint8. Rank 0 items are HDF5 scalars. Attribute:
 *       xxh64                uint64, XXH64 (seed 0) of the item's raw little-endian bytes
 *                            (C order), the same value as its header entry.
 * Groups and datasets track creation order, so listing returns items in the order they were added.
 * Object timestamps are off: the same items and attributes give a byte-identical file.
 *
 * Why a header outside HDF5: HDF5 trusts its own metadata, and a single flipped byte in it can
 * make the library loop forever (seen with HDF5 1.10.8 reading a damaged global heap, where
 * variable-length strings live). dt_ck_open therefore checks every byte with plain pread(2)
 * first, and HDF5 only ever parses a file identical to the one verified at commit.
 *
 * Commit protocol (dt_ck_commit), for final path DIR/NAME:
 *   1. write DIR/.NAME.tmp.<pid> with HDF5 (H5Fflush + H5Fclose, every return value checked),
 *      hash it back (each dataset's bytes must hash like the array in memory) and write the
 *      dtrain header into its user block;
 *   2. fsync(2) it;
 *   3. verify it like any reader would (dt_ck_open: every byte, then every item and attribute
 *      through HDF5) and compare the items and attributes with what was meant to be written;
 *   4. rename(2) it over DIR/NAME (atomic on POSIX file systems);
 *   5. fsync(2) DIR, so the rename itself survives a power loss.
 * A failure in steps 1-4 removes the temporary file and leaves DIR/NAME untouched (absent or the
 * previous complete file). A crash leaves at most a hidden DIR/.NAME.tmp.<pid>, which the directory
 * helpers ignore and dt_ck_prune removes.
 *
 * Errors are user/environment errors (STYLE.md): functions return DT_ERR after recording ONE
 * message with dt_err(), always starting with the file's path. HDF5's own automatic error printing
 * is switched off for the whole process the first time this module (or metrics.c) touches HDF5.
 * Misuse by the caller (bad rank, duplicate names, NULL data) is a bug: DT_ASSERT.
 *
 * Test hook: the environment variable DTRAIN_CKPT_FAULT=POINT[:exit|:fail] makes dt_ck_commit stop
 * at POINT (mid_write: half the items written, file still open; after_write: file closed and
 * header written, before fsync; before_rename: verified, before rename; after_rename: renamed,
 * before the directory fsync). ":exit" (the default) calls _exit(DT_CK_FAULT_EXIT) there, like
 * a kill; ":fail" returns DT_ERR through the normal clean-up path. Any other non-empty value
 * makes every commit fail.
 */
#ifndef DT_CKPT_H
#define DT_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define DT_CK_NAME_MAX 160 /* item names: at most 159 bytes */
#define DT_CK_MAX_DIM 4
#define DT_CK_FAULT_EXIT 86 /* exit status of a DTRAIN_CKPT_FAULT=POINT[:exit] commit */

typedef enum { DT_CK_F32, DT_CK_F64, DT_CK_I64, DT_CK_U8 } dt_ck_dtype;

/* "float32", "float64", "int64", "uint8". */
const char *dt_ck_dtype_name(dt_ck_dtype dtype);
/* Bytes per element: 4, 8, 8, 1. */
size_t dt_ck_dtype_size(dt_ck_dtype dtype);

/* Writes a shape as "(512, 784)", "(10)" or "()" into buf (always NUL-terminated). */
void dt_ck_format_shape(char *buf, size_t n, int ndim, const int64_t *dims);

/* XXH64 (Yann Collet's xxHash, 64-bit variant) of len bytes, bitwise equal to the reference
 * XXH64(data, len, seed). data may be NULL when len is 0. */
uint64_t dt_ck_xxh64(const void *data, size_t len, uint64_t seed);

/* The same, streamed: init, update over consecutive pieces, digest == dt_ck_xxh64 of the whole. */
typedef struct dt_ck_xxh64_state {
    uint64_t v[4], total;
    unsigned char mem[32];
    unsigned memsize;
    uint64_t seed;
} dt_ck_xxh64_state;
void dt_ck_xxh64_init(dt_ck_xxh64_state *s, uint64_t seed);
void dt_ck_xxh64_update(dt_ck_xxh64_state *s, const void *data, size_t len);
uint64_t dt_ck_xxh64_digest(const dt_ck_xxh64_state *s);

/* ---- library versions, for the root attributes of a checkpoint ---- */

/* "1.10.8": the HDF5 library linked at run time (H5get_libversion). */
const char *dt_ck_hdf5_version(void);
/* First line of MPI_Get_library_version ("Open MPI v4.1.4, package: ..."); callable before
 * MPI_Init. */
const char *dt_ck_mpi_version(void);
/* openblas_get_config() ("OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"). */
const char *dt_ck_openblas_version(void);
/* Each returns a static string, valid for the life of the process. */

/* ---- writing ---- */

typedef struct dt_ck_writer dt_ck_writer;

/* Starts a checkpoint that dt_ck_commit will write at final_path. Nothing touches the disk
 * before the commit. Never returns NULL (allocation failures abort). */
dt_ck_writer *dt_ck_begin(const char *final_path);

/* Adds an item: ndim (0..4) dims, C order, of dtype. The data is REFERENCED, not copied: it must
 * stay valid and unchanged until dt_ck_commit (or dt_ck_discard) returns. data may be NULL only
 * when the item has 0 elements. name: non-empty, at most 159 bytes, '/' separates groups (no
 * leading, trailing or doubled '/', no "." or ".." component); added only once. Misuse asserts. */
void dt_ck_add(dt_ck_writer *w, const char *name, dt_ck_dtype dtype, int ndim,
               const int64_t *dims, const void *data);
/* The same, but copies the data now (for temporaries such as a packed RNG state). */
void dt_ck_add_copy(dt_ck_writer *w, const char *name, dt_ck_dtype dtype, int ndim,
                    const int64_t *dims, const void *data);

/* Adds a string attribute on the root group (value copied). Names must be unique and not one of
 * the reserved "format", "format_version", "complete". */
void dt_ck_attr(dt_ck_writer *w, const char *name, const char *value);
/* The same with printf formatting: dt_ck_attrf(w, "world_size", "%d", world). */
DT_PRINTF(3, 4) void dt_ck_attrf(dt_ck_writer *w, const char *name, const char *fmt, ...);
/* Adds "dtrain_version", "dtrain_commit" (dt_commit), "hdf5_version", "mpi_version" and
 * "openblas_version". */
void dt_ck_attr_versions(dt_ck_writer *w);

/* Writes the checkpoint with the commit protocol above and frees w (whatever the outcome).
 * Returns 0 when final_path holds the new, verified file; DT_ERR otherwise, with a message
 * "FINAL: cannot save checkpoint: STEP ...: DETAIL" naming the failing step and path. On DT_ERR
 * from steps 1-4 the temporary file is gone and final_path is untouched. One exception: when
 * only the directory fsync (step 5) fails, the new file is already in place (complete and
 * verified, but its rename may not survive a power loss) and the message says so. */
int dt_ck_commit(dt_ck_writer *w);

/* Frees w without writing anything. NULL is a no-op. */
void dt_ck_discard(dt_ck_writer *w);

/* ---- reading ---- */

/* One item of an open checkpoint. */
typedef struct dt_ck_item {
    char name[DT_CK_NAME_MAX];
    dt_ck_dtype dtype;
    int ndim;
    int64_t dims[DT_CK_MAX_DIM]; /* dims[ndim..] are 0 */
    int64_t numel;               /* product of dims (1 for a scalar) */
    uint64_t xxh64;              /* stored checksum, verified by dt_ck_open */
} dt_ck_item;

typedef struct dt_ck_reader dt_ck_reader;

/* Opens a checkpoint AND verifies it completely: every byte of the file is read once and checked
 * against the header's checksums before HDF5 opens it; then the HDF5 content is checked (format,
 * complete, each dataset's type, rank and checksum attribute against the header). Returns 0 and
 * *out, or DT_ERR with *out = NULL and one of these messages:
 *   "PATH: cannot open checkpoint: No such file or directory"      (any stat/open errno)
 *   "PATH: not a regular file"
 *   "PATH: not an HDF5 file"
 *   "PATH: not a dtrain checkpoint (an HDF5 file without a dtrain header)"
 *   "PATH: incomplete checkpoint (no dtrain header: its writer did not finish)"
 *   "PATH: truncated file (405252 of 810504 bytes)"
 *   "PATH: file is 810505 bytes, 810504 were written"
 *   "PATH: corrupted checkpoint header (checksum mismatch)"
 *   "PATH: checksum mismatch in NAME (stored xxh64 0x..., computed 0x...)"
 *   "PATH: corrupted HDF5 metadata (checksum mismatch outside the datasets' data)"
 *   "PATH: unsupported checkpoint header version N (this dtrain reads 1)"
 * and, for a file that passed those (so only from a different writer, or a bug):
 *   "PATH: not a dtrain checkpoint (format is 'X')", "... (no 'format' attribute)"
 *   "PATH: unsupported checkpoint format_version N (this dtrain reads 1)"
 *   "PATH: incomplete checkpoint (no 'complete' attribute)"
 *   "PATH: NAME disagrees with the checkpoint header (...)", "PATH: NAME has an unsupported
 *   type/rank ...", "PATH: cannot open HDF5 file: <HDF5's innermost message>"
 * The file stays open (read-only) until dt_ck_close. */
int dt_ck_open(dt_ck_reader **out, const char *path);

/* Reads item `name` into out, which holds numel * dtype size bytes. The item must have exactly
 * this dtype and shape (ndim, dims); the data read is checked against the stored checksum again.
 * Returns 0 or DT_ERR:
 *   "PATH: no item 'NAME' in checkpoint"
 *   "PATH: NAME has dtype float64, expected float32"
 *   "PATH: NAME has shape (256, 784), expected (512, 784)"
 *   "PATH: checksum mismatch in NAME (...)" / "PATH: cannot read NAME: <HDF5>" */
int dt_ck_read(dt_ck_reader *r, const char *name, dt_ck_dtype dtype, int ndim,
               const int64_t *dims, void *out);

/* 1 if the checkpoint holds item `name`, else 0. */
int dt_ck_has(const dt_ck_reader *r, const char *name);
/* The item `name`, or NULL (no error recorded). Valid until dt_ck_close. */
const dt_ck_item *dt_ck_find(const dt_ck_reader *r, const char *name);
/* Enumeration for `dtrain inspect`: items 0 .. count-1 in the order they were added. */
int dt_ck_count(const dt_ck_reader *r);
const dt_ck_item *dt_ck_item_at(const dt_ck_reader *r, int i);

/* Root attribute `name` as a string (integer attributes such as "format_version" as decimal), or
 * NULL when missing. Valid until dt_ck_close. */
const char *dt_ck_get_attr(const dt_ck_reader *r, const char *name);
/* Enumeration of root attributes 0 .. count-1 in the order they were written; *name receives the
 * attribute's name, the value is returned. */
int dt_ck_attr_count(const dt_ck_reader *r);
const char *dt_ck_attr_at(const dt_ck_reader *r, int i, const char **name);

/* The path the reader was opened with. */
const char *dt_ck_path(const dt_ck_reader *r);

/* Closes the file and frees r. NULL is a no-op. */
void dt_ck_close(dt_ck_reader *r);

/* ---- a directory of checkpoints: DIR/ckpt-step%08lld.h5 ---- */

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
int dt_ck_find_latest_if(const char *dir, char *out_path, size_t n, int64_t *step, char *report,
                         size_t m, int (*accept)(dt_ck_reader *r, void *ctx), void *ctx);

/* Keeps the `keep` (>= 1) newest checkpoints of dir by step and deletes the older ones, but never
 * deletes the newest one that passes a cheap check (its dtrain header is intact and the file has
 * the size written; no data is read), so a run whose newer files were damaged still has one to
 * resume from. Call it right after a successful dt_ck_commit. Also removes leftover temporary
 * files (".ckpt-stepN.h5.tmp.PID" of another process) whose step is not above the newest
 * checkpoint's. Returns the number of files deleted, or DT_ERR (keep < 1, dir unreadable, unlink
 * failed) naming the path. */
int dt_ck_prune(const char *dir, int keep);

/* ---- shared with metrics.c ---- */

/* Switches off HDF5's automatic error printing for the process (idempotent). */
void dt_ck_h5_init(void);
/* The innermost message of HDF5's current error stack ("unknown HDF5 error" if empty), then clears
 * the stack. Static buffer, overwritten by the next call. */
const char *dt_ck_h5_error(void);

#endif
