"""What the platform simulators in tests/sim/ (<platform>_sim.py) have in common.

Each simulator is a Python standard-library HTTP server acting like one platform's
API, with a control API under /_sim/ for tests. This module holds their shared
plumbing; the platform's own behaviour (auth, validation, answers, special faults)
stays in its file:

  parse_rules     validation of the fault rules of POST /_sim/faults
  State           the request log, the fault rules and taking one on each request
  pause,
  retry_after     acting on a rule taken: its delay_ms, its Retry-After header
  Handler         the HTTP handler base: body reading, answers, the request log
                  line, dispatch to /_sim/ or the API, the /_sim/ control routes
  make_server,
  serve           ThreadingHTTPServer start, --port-file written atomically,
                  --log, shutdown on SIGTERM and SIGINT

The command-line flags (--port, --host, --port-file, --log and the platform's) stay
in each simulator's argparse: tests/deploy/check_in_step.py reads them there.
Python 3.11 standard library only (docker-compose runs python:3.11-slim).
"""
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_READ_BYTES = 64 * 1024 * 1024
# The rule keys every simulator takes; a platform adds its own special faults.
RULE_KEYS = {"status": int, "times": int, "match": str, "retry_after": int,
             "delay_ms": int, "name": str}


def parse_rules(obj, keys=RULE_KEYS, check=None, check_first=None, times=True):
    """Validate fault rules from POST /_sim/faults (one rule or a list); return
    copies. Each key must be in keys with that type (an int is never a bool);
    "times" must be -1 (forever) or >= 0 (unless times=False); "status" must be
    an HTTP status. check_first(rule) runs before the status check, check(rule)
    after it: a platform's own rules, raising ValueError."""
    rules = obj if isinstance(obj, list) else [obj]
    out = []
    for r in rules:
        if not isinstance(r, dict):
            raise ValueError("each fault rule must be a JSON object")
        for key, val in r.items():
            want = keys.get(key)
            if want is None:
                raise ValueError(f'unknown fault rule key "{key}"')
            if not isinstance(val, want) or (want is int and isinstance(val, bool)):
                raise ValueError(f'fault rule key "{key}" must be {want.__name__}')
        if times and r.get("times", 1) < -1:
            raise ValueError('"times" must be -1 (forever) or >= 0')
        if check_first:
            check_first(r)
        if "status" in r and not 100 <= r["status"] <= 599:
            raise ValueError('"status" must be an HTTP status code')
        if check:
            check(r)
        out.append(dict(r))
    return out


def need_status_or_delay(rule):
    """A check for parse_rules: a rule does something ("status" or "delay_ms")."""
    if "status" not in rule and "delay_ms" not in rule:
        raise ValueError('a fault rule needs "status" or "delay_ms"')


def pause(rule):
    """Sleep the rule's delay_ms, if it has one."""
    if rule.get("delay_ms"):
        time.sleep(rule["delay_ms"] / 1000.0)


def retry_after(rule, busy=False):
    """The Retry-After header of a fault answer, as a list of (name, value): the
    rule's retry_after when it has one; with busy, only on 429 (default 1 s) and
    on 503 when the rule gives it."""
    if busy:
        status = rule.get("status")
        if status == 429 or (status == 503 and "retry_after" in rule):
            return [("Retry-After", rule.get("retry_after", 1))]
        return []
    return [("Retry-After", rule["retry_after"])] if "retry_after" in rule else []


class State:
    """What a simulator remembers, guarded by self.lock: requests (the request
    log), received (what was accepted), by_status (counts) and faults (rules with
    "remaining" for "times"). A platform subclasses it: clear() (lock held) for
    its own state, stats() (lock held) for GET /_sim/stats."""

    NAME_RULES = True   # a rule without a "name" is called rule<N>

    def __init__(self, lock=None):
        self.lock = lock or threading.Lock()
        self.rule_seq = 0
        self.reset()

    def reset(self):
        """Forget requests, what was received and the faults (POST /_sim/reset)."""
        with self.lock:
            self.clear()

    def clear(self):
        self.received, self.requests, self.faults = [], [], []
        self.by_status = {}

    def add_faults(self, rules):
        """Append rules from parse_rules: "times" (default 1) becomes "remaining"."""
        with self.lock:
            for r in rules:
                if self.NAME_RULES:
                    self.rule_seq += 1
                    r.setdefault("name", f"rule{self.rule_seq}")
                r["remaining"] = r.pop("times", 1)
                self.faults.append(r)

    def clear_faults(self):
        with self.lock:
            self.faults.clear()

    def take_fault(self, data):
        """A copy of the first rule whose "match" is in data (bytes or str; any
        data when it has none) and that has times left, counting it down; {}
        when none applies."""
        with self.lock:
            for r in self.faults:
                if r["remaining"] == 0:
                    continue
                if "match" in r:
                    m = r["match"].encode() if isinstance(data, bytes) else r["match"]
                    if m not in data:
                        continue
                if r["remaining"] > 0:
                    r["remaining"] -= 1
                return dict(r)
        return {}

    def log_request(self, entry):
        """Stamp entry with at_ms, append it to requests and count its status
        (lock held); return the stamp."""
        at = int(time.time() * 1000)
        entry["at_ms"] = at
        self.requests.append(entry)
        key = str(entry["status"])
        self.by_status[key] = self.by_status.get(key, 0) + 1
        return at

    def record(self, entry):
        """log_request under the lock."""
        with self.lock:
            self.log_request(entry)

    def stats(self):
        return {"requests": len(self.requests), "by_status": dict(self.by_status)}

    def snapshot(self, what):
        """A copy of "stats", "faults" or a list attribute, for GET /_sim/<what>."""
        with self.lock:
            if what == "stats":
                return self.stats()
            if what == "faults":
                return [dict(r) for r in self.faults]
            return [dict(r) for r in getattr(self, what)]


class Handler(BaseHTTPRequestHandler):
    """The HTTP handler of a simulator. A platform sets server_version, fault_rules
    (its parse_rules) and api(path) (its endpoints), and adjusts the class
    attributes below; do_PATCH is not routed unless it sets do_PATCH = route."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    max_read_bytes = MAX_READ_BYTES
    log_replies = False   # every reply writes "METHOD PATH STATUS" to the log
    json_control = False  # a /_sim/ body is parsed first: not JSON is 400 "not JSON: ..."
    snapshots = ("received", "requests", "stats", "faults")   # GET /_sim/<what>
    fault_rules = staticmethod(parse_rules)

    def log_message(self, fmt, *args):   # the default access log is not wanted
        pass

    def crash_body(self, e):
        """The body of a 500 when a simulator bug raised e; None: no answer."""
        return None

    def log_line(self, text):
        """One line to the request log (--log, else stderr), flushed."""
        with self.server.state.lock:
            self.server.log_file.write(text + "\n")
            self.server.log_file.flush()

    def reply(self, status, body=None, headers=()):
        """Answer: a dict or list is sent as JSON, bytes as they are, None empty."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        if self.log_replies:
            self.log_line(f"{self.command} {self.path} {status}")
        self.send_answer(status, body or b"", headers)

    def send_answer(self, status, data, headers=(), ctype="application/json"):
        """Send status, Content-Type (when data), Content-Length, headers, data;
        Connection: close when the connection is to be closed."""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, val in headers:
            self.send_header(name, str(val))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        """The body by Content-Length (none: empty), or None when the length is
        not a number, negative or over max_read_bytes: the connection is closed
        after the answer."""
        length = self.headers.get("Content-Length")
        try:
            n = int(length) if length is not None else 0
        except ValueError:
            n = -1
        if n < 0 or n > self.max_read_bytes:
            self.close_connection = True
            return None
        return self.rfile.read(n)

    def route(self):
        """Every method: dispatch(); a client gone is no error; a simulator bug
        is answered 500 with crash_body (when it gives one) and raised."""
        try:
            self.dispatch()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:
            body = self.crash_body(e)
            if body is None:
                raise
            self.close_connection = True   # the client must not be left hanging
            self.reply(500, body)
            raise

    do_GET = do_POST = do_PUT = do_DELETE = route

    def dispatch(self):
        """/_sim/... to control(path), any other path to api(path)."""
        path = self.path.split("?", 1)[0]
        if path.startswith("/_sim/"):
            self.control(path)
        else:
            self.api(path)

    def control_body(self):
        return self.read_body() or b""

    def control(self, path):
        """The /_sim/ routes: GET of snapshots, POST reset, GET|POST|DELETE faults;
        then control_more(route, arg) for the platform's; else 404."""
        st = self.server.state
        body = arg = self.control_body()
        what = path[len("/_sim/"):]
        if self.json_control:
            try:
                arg = json.loads(body) if body else None
            except ValueError as e:
                return self.reply(400, {"error": f"not JSON: {e}"})
        route = (self.command, what)
        if self.command == "GET" and what in self.snapshots:
            return self.reply(200, st.snapshot(what))
        if route == ("POST", "reset"):
            st.reset()
            return self.reply(200, {"ok": True})
        if route == ("DELETE", "faults"):
            st.clear_faults()
            return self.reply(200, {"ok": True})
        if route == ("POST", "faults"):
            try:
                rules = self.fault_rules(arg if self.json_control
                                         else json.loads(body or b"null"))
            except (ValueError, TypeError) as e:
                return self.reply(400, {"error": str(e)})
            st.add_faults(rules)
            return self.reply(200, st.snapshot("faults"))
        if self.control_more(route, arg) is False:
            self.reply(404, {"error": f"no control route {self.command} {path}"})

    def control_more(self, route, arg):
        """A platform's own /_sim/ routes: route is (method, what after /_sim/),
        arg the parsed JSON (json_control) or the body's bytes. False when route
        is none of them (answered 404)."""
        return False


def make_server(host, port, handler):
    """A ThreadingHTTPServer with daemon threads on host:port (0: any free port)."""
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve(server, args, name, close=()):
    """Run server until SIGTERM or SIGINT; return 0. The request log goes to
    args.log (appended) or stderr as server.log_file; args.port_file gets the port
    (written to a temporary file, then renamed); stdout says "<name> listening on
    HOST:PORT". The files in close (None ignored) are closed at the end."""
    server.log_file = open(args.log, "a", encoding="utf-8") if args.log else sys.stderr
    port = server.server_address[1]

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"{name} listening on {args.host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        if args.log:
            server.log_file.close()
        for f in close:
            if f:
                f.close()
    return 0
