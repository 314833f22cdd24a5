#!/usr/bin/env python3
"""otlp_sink.py -- a stand-in OTLP/HTTP receiver for the benchmark's row 2t.

    python3 bench/otlp_sink.py PORT REPORT

Listens on 127.0.0.1:PORT, answers every POST with 200 and an empty
ExportTraceServiceResponse ({}), keeping connections alive, and counts the
posts and their bytes without decoding them (a collector's work is not what
the row measures). Creates REPORT.ready once listening; on SIGTERM or SIGINT
writes "posts=N bytes=M" to REPORT and exits 0.
"""
import http.server
import signal
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    posts = 0
    bytes = 0

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        Sink.posts += 1
        Sink.bytes += length
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def main():
    port, report = int(sys.argv[1]), sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink)

    def stop(signum, frame):
        with open(report, "w") as f:
            f.write(f"posts={Sink.posts} bytes={Sink.bytes}\n")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    open(report + ".ready", "w").close()
    server.serve_forever()


if __name__ == "__main__":
    main()
