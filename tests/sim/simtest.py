"""The simulators' tests' shared helper: a simulator run as a subprocess.

Standard library only. A test file puts tests/sim on sys.path and subclasses
SimProcess for its platform's credentials and requests.
"""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


class SimProcess:
    """A simulator (script) started with --port 0, --port-file and --log in a
    temporary directory (self.dir, self.port_file, self.log), then args; it has
    started when the port file appears (self.port). more_args() gives flags that
    name files in self.dir."""

    def __init__(self, script, *args, prefix="sim-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.port_file = os.path.join(self.dir, "port")
        self.log = os.path.join(self.dir, "sim.log")
        self.proc = subprocess.Popen(
            [sys.executable, script, "--port", "0", "--port-file", self.port_file,
             "--log", self.log, *self.more_args(), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("simulator did not start: " + self.proc.stderr.read())
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def more_args(self):
        return ()

    def stop(self, sig=signal.SIGTERM):
        """Send sig (killed after 5 s), remove the directory; the exit status."""
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def exchange(self, method, path, body=None, headers=None):
        """One request on a fresh connection: (the response, its body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            return resp, resp.read()
        finally:
            conn.close()

    def request(self, method, path, body=None, headers=None):
        """(status, headers with lower-case names, body bytes)."""
        resp, data = self.exchange(method, path, body, headers)
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def call_json(self, method, path, body=None, headers=None):
        """request() with a dict or list body sent as JSON and the answer parsed:
        (status, headers, JSON or None)."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        status, hdrs, data = self.request(method, path, body, headers)
        return status, hdrs, json.loads(data) if data else None
