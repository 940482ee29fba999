{
  "targets": [
    {
      "target_name": "fdops",
      "sources": ["fdops.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
