{
  "targets": [
    {
      "target_name": "layerpipe_native",
      "sources": ["server/native/seqpacket.c", "server/native/poller.c", "server/native/native-util.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-fvisibility=hidden"]
    }
  ]
}
