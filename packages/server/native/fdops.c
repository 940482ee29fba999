/*
 * Descriptor calls Node lacks, for handing accepted sockets to worker threads:
 *   dupFd(fd)   -> a new descriptor for the same socket (close-on-exec)
 *   closeFd(fd) -> close a descriptor no handle owns
 * The main thread's socket and the worker's socket each own one descriptor,
 * so neither can close the other's (or a reused number) by mistake.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>

static napi_value throw_errno(napi_env env, const char *call, int err) {
  napi_value msg, code, error;
  char text[128];
  snprintf(text, sizeof text, "%s: %s", call, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, err == EBADF ? "EBADF" : err == EMFILE ? "EMFILE" : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &error);
  napi_set_named_property(env, error, "code", code);
  napi_throw(env, error);
  return NULL;
}

static int fd_arg(napi_env env, napi_callback_info info, int32_t *fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], fd) != napi_ok || *fd < 0) {
    napi_throw_type_error(env, NULL, "expected a descriptor number");
    return 0;
  }
  return 1;
}

static napi_value dup_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, &fd)) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return throw_errno(env, "dup", errno);
  napi_value out;
  napi_create_int32(env, copy, &out);
  return out;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_arg(env, info, &fd)) return NULL;
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    { "dupFd", NULL, dup_fd, NULL, NULL, NULL, napi_default, NULL },
    { "closeFd", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
