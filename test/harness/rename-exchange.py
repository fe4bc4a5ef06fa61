#!/usr/bin/env python3
"""Race helper for the confinement tests: swaps two names of one directory with
renameat2(RENAME_EXCHANGE) as fast as it can, until SIGTERM or SIGINT.

    rename-exchange.py DIR NAME_A NAME_B

Prints "ready" once the first swap is done, and at the end the number of swaps. It always
stops after an even number of swaps, so the directory is left as it was found.
"""
import ctypes
import os
import signal
import sys

AT_FDCWD = -100
RENAME_EXCHANGE = 2

stop = False


def on_signal(_signum, _frame):
    global stop
    stop = True


def main() -> int:
    directory, a, b = sys.argv[1:4]
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = libc.renameat2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    # Paths relative to a directory fd, so each swap is one cheap system call.
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    name_a, name_b = a.encode(), b.encode()

    def swap() -> None:
        if renameat2(dfd, name_a, dfd, name_b, RENAME_EXCHANGE) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    swap()
    count = 1
    print("ready", flush=True)
    while not stop:
        swap()
        count += 1
    if count % 2 == 1:
        swap()
        count += 1
    print(count, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
