#!/usr/bin/env python3
"""A platform that answers every request 202 after a fixed delay, for
tests/bench/concurrency.sh: what a real API with a round trip of
--delay-ms looks like to relay-deliver, however many requests are under way
(asyncio: one coroutine per connection, each request answered --delay-ms
after its body has been read, never queued behind another connection's).

  slow_sink.py --port-file F --delay-ms 100 --log LOG

Listens on 127.0.0.1 (a free port, written to F). HTTP/1.1 keep-alive,
bodies by Content-Length only (what libcurl sends with POSTFIELDS). Each
answered request appends "received_ns answered_ns events bytes" to LOG,
events being the body's count of "source_request_id" (one per mParticle
batch, one per relay record). Python 3.11 standard library only.
"""
import argparse
import asyncio
import os
import time

ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


async def serve(reader, writer, delay, log):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            received = time.time_ns()
            await asyncio.sleep(delay)
            writer.write(ANSWER)
            await writer.drain()
            log.write("%d %d %d %d\n" % (received, time.time_ns(),
                                         body.count(b'"source_request_id"'), len(body)))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--delay-ms", type=float, default=100)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    log = open(args.log, "a", buffering=1)
    server = await asyncio.start_server(
        lambda r, w: serve(r, w, args.delay_ms / 1000.0, log), "127.0.0.1", 0,
        limit=64 * 1024 * 1024, backlog=512)
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, args.port_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
