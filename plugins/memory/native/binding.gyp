{
  "targets": [
    {
      "target_name": "memregion",
      "sources": ["memregion.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
