/*
 * File operations Node's fs module lacks, for the nbdts file plugin:
 *   lseekData(fd, offset)   -> next data offset at or after offset, or -1 (ENXIO: none)
 *   lseekHole(fd, offset)   -> next hole offset at or after offset, or -1 (ENXIO: past EOF)
 *   punchHole(fd, off, len) -> Promise: fallocate(PUNCH_HOLE | KEEP_SIZE)
 *   zeroRange(fd, off, len) -> Promise: fallocate(ZERO_RANGE | KEEP_SIZE)
 *   allocate(fd, off, len)  -> Promise: fallocate(KEEP_SIZE), reserve blocks
 *   blkGetSize64(fd)        -> size of a block device in bytes (ioctl BLKGETSIZE64)
 *   fadvise(fd, off, len, advice) -> posix_fadvise (advice: 0 normal, 1 random,
 *                              2 sequential, 3 willneed, 4 dontneed)
 *
 * fallocate can take a while on large ranges, so it runs on the libuv thread
 * pool; lseek and the ioctl are quick and run inline. Failures throw (or
 * reject with) an Error whose `code` is the errno name, like Node's fs errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <node_api.h>

static const char *errno_name(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case ENODEV: return "ENODEV";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case ETXTBSY: return "ETXTBSY";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case EOPNOTSUPP: return "EOPNOTSUPP"; /* == ENOTSUP on Linux */
    case EOVERFLOW: return "EOVERFLOW";
    case EINTR: return "EINTR";
    case EDQUOT: return "EDQUOT";
    default: return "EUNKNOWN";
  }
}

static napi_value make_error(napi_env env, const char *syscall, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", syscall, strerror(err));
  napi_value code, text, error, num;
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_create_int32(env, -err, &num); /* negative, as in Node's fs errors */
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &text);
  napi_set_named_property(env, error, "syscall", text);
  return error;
}

static void throw_errno(napi_env env, const char *syscall, int err) {
  napi_throw(env, make_error(env, syscall, err));
}

/* Read argument i as an integer (fd, offset, length); JS numbers are exact up to 2^53. */
static int get_int64(napi_env env, napi_value *argv, size_t argc, size_t i, int64_t *out) {
  napi_valuetype type;
  if (i >= argc || napi_typeof(env, argv[i], &type) != napi_ok || type != napi_number) {
    napi_throw_type_error(env, NULL, "expected a number argument");
    return 0;
  }
  double d;
  napi_get_value_double(env, argv[i], &d);
  if (d < 0 || d > 9007199254740991.0 || d != (double)(int64_t)d) {
    napi_throw_range_error(env, NULL, "expected a non-negative whole number");
    return 0;
  }
  *out = (int64_t)d;
  return 1;
}

static napi_value seek(napi_env env, napi_callback_info info, int whence, const char *name) {
  size_t argc = 2;
  napi_value argv[2], result;
  int64_t fd, offset;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int64(env, argv, argc, 0, &fd) || !get_int64(env, argv, argc, 1, &offset)) return NULL;
  off_t r = lseek((int)fd, (off_t)offset, whence);
  if (r == (off_t)-1) {
    if (errno == ENXIO) {
      napi_create_int32(env, -1, &result);
      return result;
    }
    throw_errno(env, name, errno);
    return NULL;
  }
  napi_create_double(env, (double)r, &result);
  return result;
}

static napi_value lseek_data(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_DATA, "lseek(SEEK_DATA)");
}

static napi_value lseek_hole(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_HOLE, "lseek(SEEK_HOLE)");
}

static napi_value blk_get_size64(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int64_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int64(env, argv, argc, 0, &fd)) return NULL;
  uint64_t size = 0;
  if (ioctl((int)fd, BLKGETSIZE64, &size) == -1) {
    throw_errno(env, "ioctl(BLKGETSIZE64)", errno);
    return NULL;
  }
  napi_create_double(env, (double)size, &result);
  return result;
}

static napi_value fadvise(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int64_t fd, offset, length, advice;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int64(env, argv, argc, 0, &fd) || !get_int64(env, argv, argc, 1, &offset) ||
      !get_int64(env, argv, argc, 2, &length) || !get_int64(env, argv, argc, 3, &advice)) return NULL;
  static const int advices[] = {
    POSIX_FADV_NORMAL, POSIX_FADV_RANDOM, POSIX_FADV_SEQUENTIAL, POSIX_FADV_WILLNEED, POSIX_FADV_DONTNEED,
  };
  if (advice > 4) {
    napi_throw_range_error(env, NULL, "fadvise: advice must be 0 to 4");
    return NULL;
  }
  /* posix_fadvise returns the error rather than setting errno. */
  int err = posix_fadvise((int)fd, (off_t)offset, (off_t)length, advices[advice]);
  if (err != 0) {
    throw_errno(env, "posix_fadvise", err);
    return NULL;
  }
  return NULL;
}

/* One fallocate call on the thread pool. */
typedef struct {
  int fd;
  int mode;
  int64_t offset, length;
  int err;
  const char *name;
  napi_deferred deferred;
  napi_async_work work;
} falloc_req;

static void falloc_execute(napi_env env, void *data) {
  (void)env;
  falloc_req *req = data;
  int r;
  do {
    r = fallocate(req->fd, req->mode, (off_t)req->offset, (off_t)req->length);
  } while (r == -1 && errno == EINTR);
  req->err = r == -1 ? errno : 0;
}

static void falloc_complete(napi_env env, napi_status status, void *data) {
  falloc_req *req = data;
  if (status != napi_ok) {
    napi_value text, error;
    napi_create_string_utf8(env, "fallocate: cancelled", NAPI_AUTO_LENGTH, &text);
    napi_create_error(env, NULL, text, &error);
    napi_reject_deferred(env, req->deferred, error);
  } else if (req->err != 0) {
    napi_reject_deferred(env, req->deferred, make_error(env, req->name, req->err));
  } else {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, req->deferred, undefined);
  }
  napi_delete_async_work(env, req->work);
  free(req);
}

static napi_value falloc_start(napi_env env, napi_callback_info info, int mode, const char *name) {
  size_t argc = 3;
  napi_value argv[3], promise, resource_name;
  int64_t fd, offset, length;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_int64(env, argv, argc, 0, &fd) || !get_int64(env, argv, argc, 1, &offset) ||
      !get_int64(env, argv, argc, 2, &length)) return NULL;
  falloc_req *req = calloc(1, sizeof *req);
  if (req == NULL) {
    throw_errno(env, name, ENOMEM);
    return NULL;
  }
  req->fd = (int)fd;
  req->mode = mode;
  req->offset = offset;
  req->length = length;
  req->name = name;
  napi_create_promise(env, &req->deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, NULL, resource_name, falloc_execute, falloc_complete, req, &req->work);
  napi_queue_async_work(env, req->work);
  return promise;
}

static napi_value punch_hole(napi_env env, napi_callback_info info) {
  return falloc_start(env, info, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "fallocate(PUNCH_HOLE)");
}

static napi_value zero_range(napi_env env, napi_callback_info info) {
  return falloc_start(env, info, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, "fallocate(ZERO_RANGE)");
}

static napi_value allocate(napi_env env, napi_callback_info info) {
  return falloc_start(env, info, FALLOC_FL_KEEP_SIZE, "fallocate");
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  const napi_property_descriptor props[] = {
    { "lseekData", NULL, lseek_data, NULL, NULL, NULL, napi_enumerable, NULL },
    { "lseekHole", NULL, lseek_hole, NULL, NULL, NULL, napi_enumerable, NULL },
    { "punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_enumerable, NULL },
    { "zeroRange", NULL, zero_range, NULL, NULL, NULL, napi_enumerable, NULL },
    { "allocate", NULL, allocate, NULL, NULL, NULL, napi_enumerable, NULL },
    { "blkGetSize64", NULL, blk_get_size64, NULL, NULL, NULL, napi_enumerable, NULL },
    { "fadvise", NULL, fadvise, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
