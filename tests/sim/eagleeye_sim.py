#!/usr/bin/env python3
"""Eagle Eye AIR wallet API simulator for relay's tests.

It listens on 127.0.0.1 and acts like the AIR wallet host
(wallet.<region>.eagleeye.com), as PLATFORMS.md section 3 describes it:

- every call is authenticated: X-EES-AUTH-CLIENT-ID must be --client-id and
  X-EES-AUTH-HASH the lowercase hex sha256(path with its /2.0 prefix +
  "?query" if any, exactly as received + raw body bytes + --secret): 401
  otherwise (the exact status is unconfirmed). A chunked body is refused
  (400): it breaks the hash;
- POST <issue path> (default /2.0/token/create) {"resourceType":"CAMPAIGN",
  "resourceId", "consumerIdentifier":{"reference":<wallet>}, "reference"?,
  "properties"?} issues a token to the wallet: 201 with the token;
- PATCH /2.0/wallet/<w>/account/<a>/earn and .../debit {"points": n > 0,
  "reference"?}: 200 with the account; a debit below zero is 400
  INSUFFICIENT_BALANCE;
- wallets and their accounts must exist (POST /_sim/wallets): 404
  {"errorCode":"WALLET_NOT_FOUND"|"ACCOUNT_NOT_FOUND", "errorMessage"};
  a campaign must be known when --campaigns (or /_sim/campaigns) lists
  some: else 404 CAMPAIGN_NOT_FOUND; a path that does not exist is 404
  {"errorCode":"NOT_FOUND"} (so a client can tell the two apart; AIR's own
  error envelope is unconfirmed);
- idempotency (our design, AIR's mechanism is unconfirmed): a call whose
  X-EES-TRANSACTION-ID was already applied is answered with the first
  answer (or 409 ALREADY_PROCESSED with --duplicate 409) and changes
  nothing.

Control API under /_sim/ (no auth):
  GET  /_sim/received   what was applied: {"kind":"token", wallet,
                        campaign, reference, txn, token, properties} and
                        {"kind":"earn"|"debit", wallet, account, points,
                        balance, reference, txn}, with at_ms
  GET  /_sim/requests   every call: method, path, status, fault, auth, txn,
                        duplicate, at_ms
  GET  /_sim/wallets    the wallets and balances
  POST /_sim/wallets    {"<wallet>": {"<account>": balance, ...}, ...} added
  POST /_sim/campaigns  ["CAMP-1", ...]: only these exist from now on
  POST /_sim/secret     {"secret": "..."}: the valid secret from now on
  POST /_sim/faults     a rule or a list of rules; GET lists, DELETE clears
  POST /_sim/reset      forget calls, tokens and faults (wallets stay)
A fault rule applies to the next `times` calls (-1: every one; default 1)
whose path or body contains `match` (any, when absent): `delay_ms` before
answering, then `status` (with Retry-After: `retry_after` on 429, and on
503 when given); with `after_apply` the call is applied first and the
status answered instead of its answer (the answer was lost). Python
standard library only.
"""
import argparse
import hashlib
import json
import re
import sys
import time
from urllib.parse import unquote

import simlib

RULE_KEYS = {**simlib.RULE_KEYS, "after_apply": bool}
MAX_READ_BYTES = 16 * 1024 * 1024
POINTS_PATH = re.compile(r"^/2\.0/wallet/([^/?]+)/account/([^/?]+)/(earn|debit)$")


def auth_hash(path_and_query, body, secret):
    """X-EES-AUTH-HASH of a call: sha256(path [+ "?" query] + body + secret)."""
    if isinstance(path_and_query, str):
        path_and_query = path_and_query.encode()
    if isinstance(body, str):
        body = body.encode()
    return hashlib.sha256(path_and_query + body + secret.encode()).hexdigest()


def check_rule(r):
    if r.get("after_apply") and "status" not in r:
        raise ValueError('an "after_apply" rule needs a "status"')


def parse_rules(obj):
    return simlib.parse_rules(obj, RULE_KEYS, check_rule)


class Refused(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class State(simlib.State):
    """Everything the simulator remembers; guarded by one lock."""

    def __init__(self, client_id, secret, campaigns):
        self.client_id, self.secret = client_id, secret
        self.campaigns = set(campaigns) if campaigns else None
        self.wallets = {}
        self.token_seq = 0
        super().__init__()

    def clear(self):
        super().clear()
        self.done = {}   # transaction id -> (status, payload)

    def apply(self, kind, txn, fn):
        """Run fn() (which changes state and returns (status, payload))
        once per transaction id: a repeat gets the first answer and
        (status, payload, True). Called with the lock held."""
        if txn and txn in self.done:
            s, p = self.done[txn]
            return s, p, True
        s, p = fn()
        if txn and 200 <= s < 300:
            self.done[txn] = (s, p)
        return s, p, False

    def snapshot(self, what):
        if what == "wallets":
            with self.lock:
                return json.loads(json.dumps(self.wallets))
        return super().snapshot(what)


class Handler(simlib.Handler):
    server_version = "eagleeye-sim/1.0"
    max_read_bytes = MAX_READ_BYTES
    log_replies = json_control = True
    snapshots = ("received", "requests", "wallets", "faults")
    fault_rules = staticmethod(parse_rules)
    do_PATCH = simlib.Handler.route

    def crash_body(self, e):
        return {"errorCode": "SIMULATOR", "errorMessage": repr(e)}

    def read_body(self):
        """The body, or None for one that cannot be read (chunked, bad
        length): the connection is closed after the answer."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            return None
        return super().read_body()

    def control_more(self, route, arg):
        st = self.server.state
        if route == ("POST", "wallets"):
            if not (isinstance(arg, dict) and all(
                    isinstance(a, dict) and all(isinstance(b, int) for b in a.values())
                    for a in arg.values())):
                return self.reply(400, {"error": 'want {"wallet": {"account": balance}}'})
            with st.lock:
                for w, accts in arg.items():
                    st.wallets.setdefault(w, {}).update(accts)
            return self.reply(200, {"ok": True})
        if route == ("POST", "campaigns"):
            if not (isinstance(arg, list) and all(isinstance(c, str) for c in arg)):
                return self.reply(400, {"error": 'want ["campaign", ...]'})
            with st.lock:
                st.campaigns = set(arg)
            return self.reply(200, {"ok": True})
        if route == ("POST", "secret"):
            if not (isinstance(arg, dict) and isinstance(arg.get("secret"), str)
                    and arg["secret"]):
                return self.reply(400, {"error": 'want {"secret": "..."}'})
            with st.lock:
                st.secret = arg["secret"]
            return self.reply(200, {"ok": True})
        return False

    # ---- the wallet API -------------------------------------------------
    def api(self, path):
        st, srv = self.server.state, self.server
        body = self.read_body()
        txn = self.headers.get("X-EES-TRANSACTION-ID")
        entry = {"method": self.command, "path": self.path, "status": None,
                 "fault": None, "auth": "ok", "txn": txn, "duplicate": False}

        def answer(status, payload, headers=()):
            entry["status"] = status
            st.record(entry)
            self.reply(status, payload, headers)

        if body is None:
            return answer(400, {"errorCode": "BAD_REQUEST",
                                "errorMessage": "chunked or bad Content-Length: "
                                                "send the body with a Content-Length"})
        with st.lock:
            client_id, secret = st.client_id, st.secret
        got_id = self.headers.get("X-EES-AUTH-CLIENT-ID")
        got_hash = self.headers.get("X-EES-AUTH-HASH")
        if got_id != client_id:
            entry["auth"] = "client id"
            return answer(401, {"errorCode": "AUTH_CLIENT_ID",
                                "errorMessage": "unknown X-EES-AUTH-CLIENT-ID"})
        if got_hash != auth_hash(self.path, body, secret):
            entry["auth"] = "missing" if not got_hash else "hash"
            return answer(401, {"errorCode": "AUTH_HASH",
                                "errorMessage": "X-EES-AUTH-HASH does not match"})

        m = POINTS_PATH.match(path)
        if path == srv.issue_path and self.command == "POST":
            op = "token"
        elif m and self.command == "PATCH":
            op = m.group(3)
        else:
            return answer(404, {"errorCode": "NOT_FOUND",
                                "errorMessage": f"no such endpoint {self.command} {path}"})

        rule = st.take_fault(self.path.encode() + b"\n" + body)
        entry["fault"] = rule.get("name")
        simlib.pause(rule)

        def fault_answer():
            return answer(rule["status"], {"errorCode": "INJECTED", "errorMessage":
                                           f'injected fault "{entry["fault"]}"'},
                          simlib.retry_after(rule, busy=True))

        if "status" in rule and not rule.get("after_apply"):
            return fault_answer()
        ctype = self.headers.get("Content-Type", "")
        if ctype.split(";", 1)[0].strip().lower() != "application/json":
            return answer(400, {"errorCode": "BAD_REQUEST",
                                "errorMessage": f"Content-Type must be application/json"})
        try:
            doc = json.loads(body.decode("utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as e:
            return answer(400, {"errorCode": "BAD_REQUEST",
                                "errorMessage": f"malformed body: {e}"})
        try:
            with st.lock:
                if op == "token":
                    status, payload, dup = st.apply(op, txn, lambda: self.issue(doc, txn))
                else:
                    status, payload, dup = st.apply(
                        op, txn, lambda: self.points(unquote(m.group(1)),
                                                     unquote(m.group(2)), op, doc, txn))
        except Refused as e:
            return answer(e.status, {"errorCode": e.code, "errorMessage": e.message})
        entry["duplicate"] = dup
        if dup and srv.duplicate_status == 409:
            return answer(409, {"errorCode": "ALREADY_PROCESSED",
                                "errorMessage": f"transaction {txn} was processed"})
        if rule.get("after_apply"):
            return fault_answer()
        answer(status, payload)

    def issue(self, doc, txn):
        """A token for a wallet (lock held): (201, token), or raise Refused."""
        st = self.server.state
        if doc.get("resourceType") != "CAMPAIGN":
            raise Refused(400, "BAD_REQUEST", 'resourceType must be "CAMPAIGN"')
        camp = doc.get("resourceId")
        if not isinstance(camp, (str, int)) or isinstance(camp, bool) or camp == "":
            raise Refused(400, "BAD_REQUEST", "resourceId is required")
        ci = doc.get("consumerIdentifier")
        wallet = ci.get("reference") if isinstance(ci, dict) else None
        if not isinstance(wallet, str) or not wallet:
            raise Refused(400, "BAD_REQUEST", "consumerIdentifier.reference is required")
        if "properties" in doc and not isinstance(doc["properties"], dict):
            raise Refused(400, "BAD_REQUEST", "properties must be an object")
        if wallet not in st.wallets:
            raise Refused(404, "WALLET_NOT_FOUND", f"wallet {wallet} not found")
        if st.campaigns is not None and str(camp) not in st.campaigns:
            raise Refused(404, "CAMPAIGN_NOT_FOUND", f"campaign {camp} not found")
        st.token_seq += 1
        token = {"tokenId": st.token_seq, "token": f"TKN{st.token_seq:08d}",
                 "resourceType": "CAMPAIGN", "resourceId": camp,
                 "consumerIdentifier": {"reference": wallet},
                 "reference": doc.get("reference"), "status": "ACTIVE"}
        st.received.append({"kind": "token", "wallet": wallet, "campaign": camp,
                            "reference": doc.get("reference"), "txn": txn,
                            "token": token["token"],
                            "properties": doc.get("properties"),
                            "at_ms": int(time.time() * 1000)})
        return 201, token

    def points(self, wallet, account, op, doc, txn):
        """An earn or debit (lock held): (200, account), or raise Refused."""
        st = self.server.state
        pts = doc.get("points")
        if not isinstance(pts, int) or isinstance(pts, bool) or pts <= 0:
            raise Refused(400, "BAD_REQUEST", "points must be a whole number above 0")
        if wallet not in st.wallets:
            raise Refused(404, "WALLET_NOT_FOUND", f"wallet {wallet} not found")
        accts = st.wallets[wallet]
        if account not in accts:
            raise Refused(404, "ACCOUNT_NOT_FOUND",
                          f"account {account} not found in wallet {wallet}")
        bal = accts[account] + (pts if op == "earn" else -pts)
        if bal < 0:
            raise Refused(400, "INSUFFICIENT_BALANCE",
                          f"account {account} holds {accts[account]} points")
        accts[account] = bal
        st.received.append({"kind": op, "wallet": wallet, "account": account,
                            "points": pts, "balance": bal,
                            "reference": doc.get("reference"), "txn": txn,
                            "at_ms": int(time.time() * 1000)})
        return 200, {"accountId": account, "walletId": wallet, "status": "ACTIVE",
                     "balances": {"current": bal}}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Eagle Eye AIR wallet API simulator")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--issue-path", default="/2.0/token/create")
    ap.add_argument("--campaigns", help="comma-separated: the only campaigns that exist")
    ap.add_argument("--duplicate", choices=("replay", "409"), default="replay",
                    help="answer a repeated transaction id with its first answer, or 409")
    ap.add_argument("--log", help="append request log here instead of stderr")
    args = ap.parse_args(argv)

    server = simlib.make_server(args.host, args.port, Handler)
    server.issue_path = args.issue_path
    server.duplicate_status = 409 if args.duplicate == "409" else 0
    server.state = State(args.client_id, args.secret,
                         args.campaigns.split(",") if args.campaigns else None)
    return simlib.serve(server, args, "eagleeye-sim")


if __name__ == "__main__":
    sys.exit(main())
