{
  "targets": [
    {
      "target_name": "ztunnel_capture",
      "sources": ["native/capture.c", "native/netns.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
