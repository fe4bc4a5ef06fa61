{
  "targets": [
    {
      "target_name": "layerpipe_native",
      "sources": ["server/native/seqpacket.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
