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
 *                            the header itself. Layout in ckpt_hdr.c. Written last.
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
 *   1. build the file in memory with HDF5 (the core driver, no backing store: HDF5 never touches
 *      the disk), hash it (each dataset's bytes must hash like the array in memory), put the
 *      dtrain header into its user block, and write it to DIR/.NAME.tmp.<pid> with write(2):
 *      the data first, the header block last;
 *   2. fsync(2) and close it;
 *   3. verify it like any reader would (dt_ck_open: every byte, then every item and attribute
 *      through HDF5) and compare the items and attributes with what was meant to be written;
 *   4. rename(2) it over DIR/NAME (atomic on POSIX file systems);
 *   5. fsync(2) DIR, so the rename itself survives a power loss.
 * A failure in steps 1-4 removes the temporary file and leaves DIR/NAME untouched (absent or the
 * previous complete file). A full disk (ENOSPC), a quota (EDQUOT), an I/O error (EIO) or a
 * directory that vanished is therefore an ordinary error naming the errno text, and no HDF5
 * handle is ever left open (the memory for the image: about the checkpoint's size, once). A crash leaves at most a hidden DIR/.NAME.tmp.<pid>, which the directory
 * helpers ignore and dt_ck_prune removes.
 *
 * Errors are user/environment errors (STYLE.md): functions return DT_ERR after recording ONE
 * message with dt_err(), always starting with the file's path. HDF5's own automatic error printing
 * is switched off for the whole process (dt_h5_init, h5util.h).
 * Misuse by the caller (bad rank, duplicate names, NULL data) is a bug: DT_ASSERT.
 *
 * Test hook: the environment variable DTRAIN_CKPT_FAULT=POINT[:exit|:fail] makes dt_ck_commit stop
 * at POINT (mid_write: half of the file's data written, no header yet; after_write: everything
 * written, before fsync; before_rename: verified, before rename; after_rename: renamed,
 * before the directory fsync). ":exit" (the default) calls _exit(DT_CK_FAULT_EXIT) there, like
 * a kill; ":fail" returns DT_ERR through the normal clean-up path. Any other non-empty value
 * makes every commit fail.
 */
#ifndef DT_CKPT_H
#define DT_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "buildinfo.h"
#include "ckpt_fmt.h" /* dt_ck_dtype, DT_CK_NAME_MAX, DT_CK_MAX_DIM */
#include "common.h"
#include "xxh64.h"

#define DT_CK_FAULT_EXIT 86 /* exit status of a DTRAIN_CKPT_FAULT=POINT[:exit] commit */

/* ---- names kept for callers of the container's first version (tests/test_ckpt.c); new code
 * calls xxh64.h and buildinfo.h directly ---- */

typedef dt_xxh64_state dt_ck_xxh64_state;
static inline uint64_t dt_ck_xxh64(const void *data, size_t len, uint64_t seed)
{
    return dt_xxh64(data, len, seed);
}
static inline void dt_ck_xxh64_init(dt_ck_xxh64_state *s, uint64_t seed) { dt_xxh64_init(s, seed); }
static inline void dt_ck_xxh64_update(dt_ck_xxh64_state *s, const void *data, size_t len)
{
    dt_xxh64_update(s, data, len);
}
static inline uint64_t dt_ck_xxh64_digest(const dt_ck_xxh64_state *s) { return dt_xxh64_digest(s); }
static inline const char *dt_ck_hdf5_version(void) { return dt_buildinfo_hdf5(); }
static inline const char *dt_ck_mpi_version(void) { return dt_buildinfo_mpi(); }
static inline const char *dt_ck_openblas_version(void) { return dt_buildinfo_openblas(); }

/* ---- writing ---- */

typedef struct dt_ck_writer dt_ck_writer;

/* Starts a checkpoint that dt_ck_commit will write at final_path. Nothing touches the disk
 * before the commit. Never returns NULL (allocation failures abort). */
dt_ck_writer *dt_ck_begin(const char *final_path);

/* Adds an item: ndim (0..4) dims, C order, of dtype. The data is REFERENCED, not copied: it must
 * stay valid and unchanged until dt_ck_commit (or dt_ck_discard) returns. data may be NULL only
 * when the item has 0 elements. name: non-empty, at most 159 bytes, '/' separates groups (no
 * leading, trailing or doubled '/', no "." or ".." component); added only once. Misuse asserts. */
void dt_ck_add(dt_ck_writer *w, const char *name, dt_ck_dtype dtype, int ndim, const int64_t *dims,
               const void *data);
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

/* The errno behind the last dt_ck_commit's failure (ENOSPC, EDQUOT, EIO, ENOENT, ...), or 0 when
 * it succeeded or failed for another reason (verification, HDF5, an injected fault). */
int dt_ck_commit_errno(void);

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
 * (checked in ckpt_hdr.c) and, for a file that passed those (so only from a different writer, or a bug):
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
int dt_ck_read(dt_ck_reader *r, const char *name, dt_ck_dtype dtype, int ndim, const int64_t *dims,
               void *out);

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

#endif
