/*
 * Memory regions shared by every thread of the process, for the nbdts memory
 * plugin (src/mapped-store.ts):
 *   create(size)              -> id: an anonymous private mapping, MAP_NORESERVE,
 *                                so memory is used only where written
 *   attach(id)                -> handle holding a reference until it is collected
 *                                (or its thread exits); throws ENOENT once released
 *   release(id)               -> drop the creator's reference
 *   window(id, offset, length)-> external ArrayBuffer over [offset, +length)
 *                                (at most 1 GiB), holding a reference until collected
 *   discard(id, offset, length) madvise(MADV_DONTNEED): page-aligned range reads as
 *                                zeros again and its memory goes back
 *   populate(id, offset, length) madvise(MADV_POPULATE_WRITE): fault in a range ahead
 *                                of writing it (EINVAL on kernels before 5.14)
 *   refs(id)                  -> references held (0 once unmapped), for tests
 *   pageSize()                -> sysconf(_SC_PAGESIZE)
 *
 * A worker thread reaches a region by its id through a process-wide table.
 * The mapping is unmapped only when the last reference goes, so no JS view of
 * it can outlive it in any thread. Ids are never reused, so a stale id can
 * only fail, never reach another region. Failures throw an Error whose `code`
 * is the errno name, like Node's fs errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <node_api.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define MAX_WINDOW (1024.0 * 1024 * 1024)

typedef struct {
  uint32_t id;
  char *base;
  size_t size;
  size_t refs;   /* guarded by table_lock */
  int released;  /* the creator's reference is gone: no new attach */
} region;

/* Shared by every thread (and Node-API environment) of the process. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static region **table; /* indexed by id; NULL once unmapped */
static uint32_t table_len, table_cap;

static const char *errno_name(int err) {
  switch (err) {
    case ENOENT: return "ENOENT";
    case ENOMEM: return "ENOMEM";
    case EINVAL: return "EINVAL";
    case EAGAIN: return "EAGAIN";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    case EOVERFLOW: return "EOVERFLOW";
    case EHWPOISON: return "EHWPOISON";
    default: return "EUNKNOWN";
  }
}

static void throw_errno(napi_env env, const char *syscall, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", syscall, strerror(err));
  napi_value code, text, error, num;
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_create_int32(env, -err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &text);
  napi_set_named_property(env, error, "syscall", text);
  napi_throw(env, error);
}

/* Read argument i as a whole number; JS numbers are exact up to 2^53. */
static int get_uint(napi_env env, napi_value *argv, size_t argc, size_t i, double max, uint64_t *out) {
  napi_valuetype type;
  if (i >= argc || napi_typeof(env, argv[i], &type) != napi_ok || type != napi_number) {
    napi_throw_type_error(env, NULL, "expected a number argument");
    return 0;
  }
  double d;
  napi_get_value_double(env, argv[i], &d);
  if (!(d >= 0 && d <= max) || d != (double)(uint64_t)d) {
    napi_throw_range_error(env, NULL, "expected a non-negative whole number in range");
    return 0;
  }
  *out = (uint64_t)d;
  return 1;
}

/* The single id argument of attach, release and refs; 0 after throwing. */
static int id_arg(napi_env env, napi_callback_info info, uint64_t *id) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  return get_uint(env, argv, argc, 0, UINT32_MAX, id);
}

static size_t os_page(void) {
  return (size_t)sysconf(_SC_PAGESIZE);
}

/* The region `id` with a reference taken, or NULL (unknown, unmapped, or released if live_only). */
static region *ref_region(uint64_t id, int live_only) {
  region *r = NULL;
  pthread_mutex_lock(&table_lock);
  if (id < table_len && table[id] != NULL && !(live_only && table[id]->released)) {
    r = table[id];
    r->refs++;
  }
  pthread_mutex_unlock(&table_lock);
  return r;
}

static void unref_region(region *r) {
  pthread_mutex_lock(&table_lock);
  int last = --r->refs == 0;
  if (last) table[r->id] = NULL;
  pthread_mutex_unlock(&table_lock);
  if (last) {
    munmap(r->base, r->size);
    free(r);
  }
}

/* Finalizer of attach handles and windows: each holds one reference. */
static void finalize_ref(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  unref_region(hint);
}

static napi_value create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  uint64_t size;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_uint(env, argv, argc, 0, 9007199254740991.0, &size)) return NULL;
  size_t ps = os_page();
  size = size == 0 ? ps : (size + ps - 1) / ps * ps;
  region *r = calloc(1, sizeof *r);
  if (r == NULL) {
    throw_errno(env, "create", ENOMEM);
    return NULL;
  }
  void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    int err = errno;
    free(r);
    throw_errno(env, "mmap", err);
    return NULL;
  }
  r->base = base;
  r->size = size;
  r->refs = 1;
  pthread_mutex_lock(&table_lock);
  if (table_len == 0) table_len = 1; /* id 0 is never valid */
  if (table_len >= table_cap) {
    uint32_t cap = table_cap == 0 ? 16 : table_cap * 2;
    region **grown = realloc(table, cap * sizeof *table);
    if (grown == NULL) {
      pthread_mutex_unlock(&table_lock);
      munmap(base, size);
      free(r);
      throw_errno(env, "create", ENOMEM);
      return NULL;
    }
    table = grown;
    table_cap = cap;
  }
  r->id = table_len++;
  table[r->id] = r;
  pthread_mutex_unlock(&table_lock);
  napi_create_uint32(env, r->id, &result);
  return result;
}

static napi_value attach(napi_env env, napi_callback_info info) {
  napi_value result;
  uint64_t id;
  if (!id_arg(env, info, &id)) return NULL;
  region *r = ref_region(id, 1);
  if (r == NULL) {
    throw_errno(env, "attach", ENOENT);
    return NULL;
  }
  if (napi_create_external(env, NULL, finalize_ref, r, &result) != napi_ok) {
    unref_region(r);
    throw_errno(env, "attach", ENOMEM);
    return NULL;
  }
  return result;
}

static napi_value release(napi_env env, napi_callback_info info) {
  uint64_t id;
  if (!id_arg(env, info, &id)) return NULL;
  region *r = NULL;
  pthread_mutex_lock(&table_lock);
  if (id < table_len && table[id] != NULL && !table[id]->released) {
    r = table[id];
    r->released = 1;
  }
  pthread_mutex_unlock(&table_lock);
  if (r == NULL) {
    throw_errno(env, "release", ENOENT);
    return NULL;
  }
  unref_region(r);
  return NULL;
}

/* Parse (id, offset, length), check the range and take a reference; NULL after throwing. */
static region *range_args(napi_env env, napi_callback_info info, const char *name, uint64_t *offset, uint64_t *length) {
  size_t argc = 3;
  napi_value argv[3];
  uint64_t id;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (!get_uint(env, argv, argc, 0, UINT32_MAX, &id) ||
      !get_uint(env, argv, argc, 1, 9007199254740991.0, offset) ||
      !get_uint(env, argv, argc, 2, 9007199254740991.0, length)) return NULL;
  region *r = ref_region(id, 0);
  if (r == NULL) {
    throw_errno(env, name, ENOENT);
    return NULL;
  }
  if (*offset > r->size || *length > r->size - *offset) {
    unref_region(r);
    throw_errno(env, name, EINVAL);
    return NULL;
  }
  return r;
}

static napi_value window(napi_env env, napi_callback_info info) {
  uint64_t offset, length;
  napi_value result;
  region *r = range_args(env, info, "window", &offset, &length);
  if (r == NULL) return NULL;
  if ((double)length > MAX_WINDOW) {
    unref_region(r);
    throw_errno(env, "window", EINVAL);
    return NULL;
  }
  /* The reference taken above now belongs to the ArrayBuffer. */
  if (napi_create_external_arraybuffer(env, r->base + offset, length, finalize_ref, r, &result) != napi_ok) {
    unref_region(r);
    throw_errno(env, "window", ENOMEM);
    return NULL;
  }
  return result;
}

static napi_value advise(napi_env env, napi_callback_info info, int advice, const char *name) {
  uint64_t offset, length;
  region *r = range_args(env, info, name, &offset, &length);
  if (r == NULL) return NULL;
  size_t ps = os_page();
  int err = 0;
  if (offset % ps != 0 || length % ps != 0) {
    err = EINVAL;
  } else if (length > 0) {
    int rc;
    do {
      rc = madvise(r->base + offset, length, advice);
    } while (rc == -1 && (errno == EINTR || errno == EAGAIN));
    if (rc == -1) err = errno;
  }
  unref_region(r);
  if (err != 0) throw_errno(env, name, err);
  return NULL;
}

static napi_value discard(napi_env env, napi_callback_info info) {
  return advise(env, info, MADV_DONTNEED, "madvise(DONTNEED)");
}

static napi_value populate(napi_env env, napi_callback_info info) {
  return advise(env, info, MADV_POPULATE_WRITE, "madvise(POPULATE_WRITE)");
}

static napi_value refs(napi_env env, napi_callback_info info) {
  napi_value result;
  uint64_t id;
  if (!id_arg(env, info, &id)) return NULL;
  size_t n = 0;
  pthread_mutex_lock(&table_lock);
  if (id < table_len && table[id] != NULL) n = table[id]->refs;
  pthread_mutex_unlock(&table_lock);
  napi_create_double(env, (double)n, &result);
  return result;
}

static napi_value page_size(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_double(env, (double)os_page(), &result);
  return result;
}

/* NAPI_MODULE_INIT: context-aware, so every worker thread can load it too. */
NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  const napi_property_descriptor props[] = {
    { "create", NULL, create, NULL, NULL, NULL, napi_enumerable, NULL },
    { "attach", NULL, attach, NULL, NULL, NULL, napi_enumerable, NULL },
    { "release", NULL, release, NULL, NULL, NULL, napi_enumerable, NULL },
    { "window", NULL, window, NULL, NULL, NULL, napi_enumerable, NULL },
    { "discard", NULL, discard, NULL, NULL, NULL, napi_enumerable, NULL },
    { "populate", NULL, populate, NULL, NULL, NULL, napi_enumerable, NULL },
    { "refs", NULL, refs, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pageSize", NULL, page_size, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
