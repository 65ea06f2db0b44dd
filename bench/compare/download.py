# SPDX-License-Identifier: MIT
# The gevent anchor of the seeds' I/O case: 160 downloads, each in a
# greenlet doing plain blocking socket calls made cooperative by
# gevent.monkey.patch_all(), from the server bench_download --serve runs
# (10,000-byte bodies, 50 ms delay). The median of BENCH_REPS repetitions
# after one warm-up:
#   BENCH io.download.gevent <s> s
#   download.py PORT
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

DOWNLOADS = 160
BODY = 10000
REQUEST = b"GET /file HTTP/1.0\r\nHost: x\r\n\r\n"


def download(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", port))
    s.sendall(REQUEST)
    got = []
    while True:
        b = s.recv(16384)
        if not b:
            break
        got.append(b)
    s.close()
    data = b"".join(got)
    head, _, body = data.partition(b"\r\n\r\n")
    return len(body) == BODY and head.startswith(b"HTTP/1.0 200")


def once(port):
    t0 = time.perf_counter()
    jobs = [gevent.spawn(download, port) for _ in range(DOWNLOADS)]
    gevent.joinall(jobs, raise_error=True)
    s = time.perf_counter() - t0
    if not all(j.value for j in jobs):
        sys.exit("download.py: an incomplete download")
    return s


def main():
    port = int(sys.argv[1])
    reps = max(5, min(99, int(os.environ.get("BENCH_REPS", "9") or 9)))
    once(port)
    v = statistics.median(once(port) for _ in range(reps))
    print("BENCH io.download.gevent %.3f s" % v, flush=True)


if __name__ == "__main__":
    main()
