{
  "targets": [
    {
      "target_name": "fileops",
      "sources": ["fileops.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
