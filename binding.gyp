{
  "targets": [
    {
      "target_name": "layerpipe_native",
      "sources": ["protocol/seqpacket/seqpacket.c", "protocol/seqpacket/fd-calls.c", "protocol/seqpacket/poller.c", "protocol/seqpacket/native-util.c", "protocol/seqpacket/beneath.c", "protocol/seqpacket/unix-socket.c", "protocol/seqpacket/base64.c", "protocol/seqpacket/pipe-feed.c", "protocol/seqpacket/file-pump.c", "protocol/seqpacket/start-files.c", "protocol/seqpacket/blob-hasher.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-fvisibility=hidden"]
    }
  ]
}
