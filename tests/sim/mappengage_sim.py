#!/usr/bin/env python3
"""Mapp Engage REST API simulator (/api/rest/v19) for relay's tests.

It listens on 127.0.0.1 and acts like an Engage web-service domain, as
PLATFORMS.md section 6 and Mapp's per-endpoint API pages describe it:

- every request needs HTTP Basic with the API user (--user, --password):
  401 when missing or wrong; `Host` must equal --domain (the web-service
  domain): else 404 {"errorActor":"CLIENT","errorCode":"INVALID_REQUEST",
  "message":"Not Found"}, as for any unknown path; `Accept` (when sent)
  and `Content-Type` of a body must be application/json (else 406 / 415);
- POST /membership/subscribeByEmail?email=&groupId=&subscriptionMode=
  (OPT_IN | CONFIRMED_OPT_IN | DOUBLE_OPT_IN) and
  POST /membership/unsubscribeByEmail?email=&groupId= answer 204; the
  email must be a valid address, properly URL-encoded (a raw '+' decodes to
  a space, a raw '[' or ']' is refused), the recipient must already exist
  (400 "User with email=... does not exist.", NO_SUCH_OBJECT), the group
  must exist (400 "Group with id=... does not exist.") and not be archived
  (400 NO_SUCH_OBJECT "Group with id=... is archived.");
- POST /membership/subscribe?userId=&groupId=&subscriptionMode= and
  POST /membership/unsubscribe?userId=&groupId=&unsubscriptionMode=
  (OPT_IN | CONFIRMED_OPT_IN) the same by the recipient's numeric id;
- GET /group/find?name= answers 200 with a JSON array of the groups
  ({id, name, description, email}) of that exact name (all without name);
- POST /group/clone?groupId= with GroupCloneOptions {"name", "email",
  "description", "includePreparedMessages", "includeTestUsers",
  "keepOwner", "withOwnerAsMember"} creates a group (members are not
  copied) and answers 200 {"id", "name", "description", "email"}; 400 when
  the source group does not exist, or OBJECT_ALREADY_EXISTS when the name
  or the email is taken.

Tests start it with `--port 0 --port-file F --user U --password P
--domain D --default-group ID --recipients a@x,b@y` and use the control API
under /_sim/ (no auth, any Host):
  GET  /_sim/received   {"memberships": [{"op": "add"|"remove", "email",
                        "userId", "groupId", "group", "mode", "at_ms"}],
                        "groups_created": [{"id", "name", "email",
                        "cloned_from", "at_ms"}]}: what changed
  GET  /_sim/requests   every API request: method, path, query, status,
                        fault, at_ms
  GET  /_sim/groups     all groups with their members; POST adds groups
                        [{"id", "name", "archived"}]
  POST /_sim/recipients {"emails": [...]} recipients that exist from now on
                        (each gets a userId)
  POST /_sim/password   {"password": "..."} the valid password from now on
  POST /_sim/faults     a rule or a list of rules; GET lists, DELETE clears
  POST /_sim/reset      forget requests, changes, faults, created groups and
                        a changed password
A fault rule applies to the next `times` requests (-1: every one; default
1) whose path and query contain `match` (any when absent): `delay_ms`
before answering, then `status` (with Retry-After: `retry_after` when
given). Python standard library only.
"""
import argparse
import base64
import json
import re
import sys
import threading
import time
from urllib.parse import parse_qs

import simlib

BASE = "/api/rest/v19"
SUB_MODES = ("OPT_IN", "CONFIRMED_OPT_IN", "DOUBLE_OPT_IN")
UNSUB_MODES = ("OPT_IN", "CONFIRMED_OPT_IN")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NOT_FOUND = {"errorActor": "CLIENT", "errorCode": "INVALID_REQUEST", "message": "Not Found"}
MAX_READ_BYTES = 1 << 20


class Refused(Exception):
    def __init__(self, status, body):
        super().__init__(body.get("message", ""))
        self.status, self.body = status, body


def no_such(obj_type, prop, value, message):
    return Refused(400, {"errorActor": "CLIENT", "errorCode": "NO_SUCH_OBJECT",
                         "message": message, "objectType": obj_type,
                         "propertyName": prop, "propertyValue": str(value)})


def bad_param(name, message):
    return Refused(400, {"errorActor": "CLIENT", "errorCode": "INVALID_PARAMETER",
                         "message": message, "parameterName": name})


def parse_rules(obj):
    """The common fault rules; "times" is not checked and a rule gets no name."""
    return simlib.parse_rules(obj, times=False)


class State(simlib.State):
    """Everything the simulator remembers; guarded by one lock."""

    NAME_RULES = False

    def __init__(self, user, password, default_group, recipients):
        self.user, self.first_password = user, password
        self.default_group = default_group
        self.base_recipients = list(recipients)
        super().__init__(threading.RLock())

    def clear(self):
        super().clear()
        self.memberships, self.created = [], []
        self.password = self.first_password
        self.groups = {}
        if self.default_group:
            self.groups[self.default_group] = {
                "id": self.default_group, "name": "default", "description": "template",
                "email": "default@sim.example", "archived": False, "members": set()}
        self.recipients, self.by_id = {}, {}
        self.next_group, self.next_user = 90000, 18000000001
        for e in self.base_recipients:
            self._add_recipient(e)

    def _add_recipient(self, email):
        if email.lower() not in self.recipients:
            self.recipients[email.lower()] = self.next_user
            self.by_id[self.next_user] = email.lower()
            self.next_user += 1


class Handler(simlib.Handler):
    server_version = "mappengage-sim/1.0"
    max_read_bytes = MAX_READ_BYTES
    log_replies = True

    def crash_body(self, e):
        return {"message": f"simulator error: {e!r}"}

    def dispatch(self):
        path, _, query = self.path.partition("?")
        body = self.read_body()
        if path.startswith("/_sim/"):
            self.control(path[len("/_sim/"):], body)
        else:
            self.api(path, query, body)

    # ---- control API ----------------------------------------------------
    def control(self, what, body):
        st = self.server.state
        try:
            obj = json.loads(body) if body else None
        except ValueError:
            return self.reply(400, {"message": "control body is not JSON"})
        route = (self.command, what)
        if route == ("GET", "received"):
            with st.lock:
                return self.reply(200, {"memberships": list(st.memberships),
                                        "groups_created": list(st.created)})
        if route == ("GET", "requests"):
            with st.lock:
                return self.reply(200, list(st.requests))
        if route == ("GET", "groups"):
            with st.lock:
                return self.reply(200, [dict(g, members=sorted(g["members"]))
                                        for g in st.groups.values()])
        if route == ("POST", "groups"):
            with st.lock:
                for g in obj if isinstance(obj, list) else [obj]:
                    st.groups[int(g["id"])] = {
                        "id": int(g["id"]), "name": g.get("name", f"g{g['id']}"),
                        "description": "", "email": g.get("email", f"g{g['id']}@sim.example"),
                        "archived": bool(g.get("archived")), "members": set()}
            return self.reply(204)
        if route == ("POST", "recipients"):
            with st.lock:
                for e in obj.get("emails", []):
                    st._add_recipient(e)
            return self.reply(204)
        if route == ("POST", "password"):
            with st.lock:
                st.password = obj["password"]
            return self.reply(204)
        if route == ("POST", "faults"):
            try:
                rules = parse_rules(obj)
            except ValueError as e:
                return self.reply(400, {"message": str(e)})
            st.add_faults(rules)
            return self.reply(204)
        if route == ("GET", "faults"):
            with st.lock:
                return self.reply(200, [dict(r) for r in st.faults])
        if route == ("DELETE", "faults"):
            st.clear_faults()
            return self.reply(204)
        if route == ("POST", "reset"):
            st.reset()
            return self.reply(204)
        return self.reply(404, {"message": f"no control endpoint {self.command} {what}"})

    # ---- the Engage API -------------------------------------------------
    def api(self, path, query, body):
        st = self.server.state
        entry = {"method": self.command, "path": path, "query": query,
                 "at_ms": int(time.time() * 1000)}
        fault = st.take_fault(path + "?" + query)
        simlib.pause(fault)
        status, payload, headers = self.answer(path, query, body, fault)
        entry["status"], entry["fault"] = status, bool(fault and fault.get("status"))
        with st.lock:
            st.requests.append(entry)
        self.reply(status, payload, headers)

    def answer(self, path, query, body, fault):
        st = self.server.state
        auth = self.headers.get("Authorization", "")
        ok = False
        if auth.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                with st.lock:
                    ok = user == st.user and pw == st.password
            except (ValueError, UnicodeDecodeError):
                ok = False
        if not ok:
            return 401, {"errorActor": "CLIENT", "errorCode": "NOT_AUTHORIZED",
                         "message": "Unauthorized"}, [("WWW-Authenticate", 'Basic realm="Engage"')]
        if (self.headers.get("Host") or "").split(":")[0] != self.server.domain:
            return 404, NOT_FOUND, []
        accept = self.headers.get("Accept")
        if accept and "application/json" not in accept and "*/*" not in accept:
            return 406, {"message": "Accept must allow application/json"}, []
        if body and "application/json" not in (self.headers.get("Content-Type") or ""):
            return 415, {"message": "Content-Type must be application/json"}, []
        if fault and fault.get("status"):
            return fault["status"], {"message": "simulated fault"}, simlib.retry_after(fault)
        if not path.startswith(BASE + "/"):
            return 404, NOT_FOUND, []
        call = (self.command, path[len(BASE):])
        handler = {
            ("POST", "/membership/subscribeByEmail"): self.membership,
            ("POST", "/membership/unsubscribeByEmail"): self.membership,
            ("POST", "/membership/subscribe"): self.membership,
            ("POST", "/membership/unsubscribe"): self.membership,
            ("GET", "/group/find"): self.find,
            ("POST", "/group/clone"): self.clone,
        }.get(call)
        if handler is None:
            return 404, NOT_FOUND, []
        try:
            return handler(call[1], query, body)
        except Refused as r:
            return r.status, r.body, []

    @staticmethod
    def param(q, name, required=True):
        vals = q.get(name)
        if not vals or vals[0] == "":
            if required:
                raise Refused(400, {"errorActor": "CLIENT", "errorCode": "MISSING_PARAMETER",
                                    "message": f"Parameter '{name}' is mandatory but no "
                                               "value was specified.",
                                    "parameterName": name})
            return None
        return vals[0]

    @staticmethod
    def int64(name, text):
        if not re.fullmatch(r"-?[0-9]{1,19}", text):
            raise bad_param(name, f"Parameter '{name}' must be an int64: '{text}'.")
        return int(text)

    def group(self, gid):
        g = self.server.state.groups.get(gid)
        if g is None:
            raise no_such("Group", "id", gid, f"Group with id={gid} does not exist.")
        if g["archived"]:
            raise no_such("Group", "id", gid, f"Group with id={gid} is archived.")
        return g

    def membership(self, call, query, body):
        st = self.server.state
        q = parse_qs(query, keep_blank_values=True)
        by_email = call.endswith("ByEmail")
        add = "/subscribe" in call
        if by_email:
            email = self.param(q, "email")
            raw = re.search(r"(?:^|&)email=([^&]*)", query).group(1)
            if "[" in raw or "]" in raw or not EMAIL_RE.match(email):
                raise bad_param("email", "Parameter 'email' is not a valid email address.")
        else:
            uid = self.int64("userId", self.param(q, "userId"))
        gid = self.int64("groupId", self.param(q, "groupId"))
        mode = None
        if add:
            mode = self.param(q, "subscriptionMode")
            if mode not in SUB_MODES:
                raise bad_param("subscriptionMode", f"Parameter 'subscriptionMode' has "
                                f"an invalid value '{mode}'.")
        elif not by_email:
            mode = self.param(q, "unsubscriptionMode")
            if mode not in UNSUB_MODES:
                raise bad_param("unsubscriptionMode", f"Parameter 'unsubscriptionMode' "
                                f"has an invalid value '{mode}'.")
        with st.lock:
            if by_email:
                uid = st.recipients.get(email.lower())
                if uid is None:
                    raise no_such("User", "email", email,
                                  f"User with email={email} does not exist.")
            elif uid not in st.by_id:
                raise no_such("User", "id", uid, f"User with id={uid} does not exist.")
            g = self.group(gid)
            if add:
                g["members"].add(st.by_id[uid])
            else:
                g["members"].discard(st.by_id[uid])
            st.memberships.append({"op": "add" if add else "remove", "email": st.by_id[uid],
                                   "userId": uid, "groupId": gid, "group": g["name"],
                                   "mode": mode, "at_ms": int(time.time() * 1000)})
        return 204, None, []

    def find(self, call, query, body):
        st = self.server.state
        name = self.param(parse_qs(query, keep_blank_values=True), "name", required=False)
        with st.lock:
            found = [{k: g[k] for k in ("id", "name", "description", "email")}
                     for g in st.groups.values() if name is None or g["name"] == name]
        return 200, found, []

    def clone(self, call, query, body):
        st = self.server.state
        gid = self.int64("groupId", self.param(parse_qs(query), "groupId"))
        try:
            opts = json.loads(body or b"")
        except ValueError:
            raise Refused(400, {"errorActor": "CLIENT", "errorCode": "INVALID_REQUEST",
                                "message": "The provided JSON object representation is "
                                           "incorrect."})
        if not isinstance(opts, dict):
            raise bad_param("body", "GroupCloneOptions must be an object")
        name, email = opts.get("name"), opts.get("email")
        if not isinstance(name, str) or not name or len(name) > 150:
            raise bad_param("name", "Parameter 'name' is mandatory (at most 150 characters).")
        if not isinstance(email, str) or not EMAIL_RE.match(email):
            raise bad_param("email", "Parameter 'email' is not a valid email address.")
        for k in ("includePreparedMessages", "includeTestUsers", "keepOwner",
                  "withOwnerAsMember"):
            if k in opts and not isinstance(opts[k], bool) and opts[k] not in ("true", "false"):
                raise bad_param(k, f"Parameter '{k}' must be a boolean.")
        with st.lock:
            if gid not in st.groups:
                raise bad_param("groupId", f"Group with groupId={gid} cannot be found.")
            for g in st.groups.values():
                for prop, val in (("name", name), ("email", email)):
                    if g[prop].lower() == val.lower():
                        raise Refused(400, {"errorActor": "CLIENT",
                                            "errorCode": "OBJECT_ALREADY_EXISTS",
                                            "message": f"Group with group.{prop}={val} does "
                                                       "already exist.",
                                            "objectType": "Group",
                                            "propertyName": f"group.{prop}",
                                            "propertyValue": val})
            new = st.next_group
            st.next_group += 1
            st.groups[new] = {"id": new, "name": name, "description": opts.get("description", ""),
                              "email": email, "archived": False, "members": set()}
            st.created.append({"id": new, "name": name, "email": email, "cloned_from": gid,
                               "at_ms": int(time.time() * 1000)})
            g = st.groups[new]
            return 200, {k: g[k] for k in ("id", "name", "description", "email")}, []


def main(argv=None):
    ap = argparse.ArgumentParser(description="Mapp Engage REST API simulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port-file")
    ap.add_argument("--user", required=True, help="the API system user")
    ap.add_argument("--password", required=True)
    ap.add_argument("--domain", default="engage.sim.example",
                    help="the web-service domain the Host header must name")
    ap.add_argument("--default-group", type=int, default=1000,
                    help="id of the group relay clones (0: none)")
    ap.add_argument("--recipients", default="",
                    help="comma-separated emails of recipients that exist")
    ap.add_argument("--log", help="append request log here instead of stderr")
    args = ap.parse_args(argv)

    server = simlib.make_server(args.host, args.port, Handler)
    server.domain = args.domain
    server.state = State(args.user, args.password, args.default_group,
                         [e for e in args.recipients.split(",") if e])
    return simlib.serve(server, args, "mappengage-sim")


if __name__ == "__main__":
    sys.exit(main())
