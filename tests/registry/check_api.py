#!/usr/bin/env python3
"""Check a schema registry's Confluent-compatible REST API against the calls relay uses.

    tests/registry/check_api.py URL

URL is the base of the Confluent API (what tests/registry/start.sh prints after
`url=`, e.g. http://127.0.0.1:18081/apis/ccompat/v7). Python 3 standard library
only. Every run uses fresh subject names (a random prefix), so it can run on a
registry that already holds data, but the global /config is changed and then
restored.

Each check prints one line:
    ok    NAME: what was seen
    QUIRK NAME: differs from Confluent in a way a client can live with
    FAIL  NAME: differs from Confluent in a way that matters to relay
The exit status is 1 when any FAIL was printed (or the registry did not
answer), else 0. The last line is "N passed, N failed" (quirks count as passed).
"""
import json
import os
import sys
import urllib.error
import urllib.request

CT = "application/vnd.schemaregistry.v1+json"
results = {"ok": 0, "QUIRK": 0, "FAIL": 0}


def call(method, url, body=None):
    """Returns (status, parsed JSON or raw text or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": CT, "Accept": CT})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def report(kind, name, what):
    results[kind] += 1
    print(f"{kind:<5} {name}: {what}", flush=True)


def expect(name, cond, what, quirk=False):
    report("ok" if cond else ("QUIRK" if quirk else "FAIL"), name, what)
    return cond


def error_code(body):
    return body.get("error_code") if isinstance(body, dict) else None


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/")
    p = "relaychk" + os.urandom(3).hex()
    s1, s2, s3 = p + "-a-value", p + "-b-value", p + "-c-value"

    def rec(name, fields):
        return json.dumps({"type": "record", "name": name, "namespace": "relay.check",
                           "fields": fields})

    v1 = rec("R", [{"name": "a", "type": "int"}])
    v2_ok = rec("R", [{"name": "a", "type": "int"},
                      {"name": "b", "type": "string", "default": ""}])   # BACKWARD-compatible
    v2_bad = rec("R", [{"name": "a", "type": "int"},
                       {"name": "c", "type": "string"}])                 # new field, no default
    other = rec("Other", [{"name": "x", "type": "long"}])

    # --- reachability ------------------------------------------------------
    try:
        st, body = call("GET", base + "/subjects")
    except OSError as e:
        print(f"FAIL  reach: GET {base}/subjects: {e}")
        print("0 passed, 1 failed")
        return 1
    expect("GET /subjects", st == 200 and isinstance(body, list),
           f"{st} {type(body).__name__} ({len(body) if isinstance(body, list) else body})")

    # --- global config (read, and remember it to restore) --------------------
    st, body = call("GET", base + "/config")
    g_level = body.get("compatibilityLevel") if isinstance(body, dict) else None
    expect("GET /config", st == 200 and g_level is not None, f"{st} {body}")
    expect("default compatibility is BACKWARD", g_level == "BACKWARD", f"compatibilityLevel={g_level}")

    # --- register ----------------------------------------------------------
    st, body = call("POST", f"{base}/subjects/{s1}/versions", {"schema": v1})
    ok = expect("POST /subjects/{s}/versions", st == 200 and isinstance(body, dict)
                and isinstance(body.get("id"), int), f"{st} {body}")
    id1 = body.get("id") if ok else None
    if ok and set(body) != {"id"}:
        report("QUIRK", "register answer keys", f"{sorted(body)} (Confluent: only id)")

    st, body = call("POST", f"{base}/subjects/{s1}/versions", {"schema": v1})
    expect("re-register same schema, same subject -> same id",
           st == 200 and isinstance(body, dict) and body.get("id") == id1, f"{st} {body} (first id {id1})")

    # Same schema text with other whitespace: Confluent parses the schema and
    # answers with the existing id.
    v1_spaced = json.dumps(json.loads(v1), indent=2)
    st, body = call("POST", f"{base}/subjects/{s1}/versions", {"schema": v1_spaced})
    expect("re-register same schema with other whitespace -> same id",
           st == 200 and isinstance(body, dict) and body.get("id") == id1,
           f"{st} {body} (first id {id1})", quirk=True)
    st, body = call("GET", f"{base}/subjects/{s1}/versions")
    expect("GET /subjects/{s}/versions after the re-registrations", st == 200 and body == [1],
           f"{st} {body} (Confluent: [1])", quirk=True)

    st, body = call("POST", f"{base}/subjects/{s2}/versions", {"schema": v1})
    expect("same schema under a second subject -> same id (ids shared like Confluent)",
           st == 200 and isinstance(body, dict) and body.get("id") == id1, f"{st} {body} (first id {id1})")

    st, body = call("POST", f"{base}/subjects/{s3}/versions", {"schema": other})
    id_other = body.get("id") if isinstance(body, dict) else None
    expect("another schema under a third subject -> a new id",
           st == 200 and isinstance(id_other, int) and id_other != id1, f"{st} {body}")

    # --- lookup ------------------------------------------------------------
    st, body = call("POST", f"{base}/subjects/{s1}", {"schema": v1})
    ok = (st == 200 and isinstance(body, dict) and body.get("subject") == s1
          and body.get("id") == id1 and body.get("version") == 1 and isinstance(body.get("schema"), str))
    expect("POST /subjects/{s} (lookup)", ok, f"{st} {body}")
    if ok and json.loads(body["schema"]) != json.loads(v1):
        report("QUIRK", "lookup schema text", "differs from the registered JSON")

    st, body = call("POST", f"{base}/subjects/{s1}", {"schema": other})
    expect("POST /subjects/{s} with an unregistered schema -> 404 40403",
           st == 404 and error_code(body) == 40403, f"{st} {body}", quirk=st == 404)
    st, body = call("POST", f"{base}/subjects/{p}-nosuch", {"schema": v1})
    expect("POST /subjects/{unknown} -> 404 40401",
           st == 404 and error_code(body) == 40401, f"{st} {body}")

    # --- by id -------------------------------------------------------------
    st, body = call("GET", f"{base}/schemas/ids/{id1}")
    ok = st == 200 and isinstance(body, dict) and isinstance(body.get("schema"), str)
    expect("GET /schemas/ids/{id}", ok and json.loads(body["schema"]) == json.loads(v1), f"{st} {body}")
    if ok and body.get("schemaType") not in (None, "AVRO"):
        report("QUIRK", "schemaType", f"{body.get('schemaType')}")

    st, body = call("GET", f"{base}/schemas/ids/{id1}/versions")
    pairs = sorted((d.get("subject"), d.get("version")) for d in body) if isinstance(body, list) else None
    expect("GET /schemas/ids/{id}/versions", st == 200 and pairs == [(s1, 1), (s2, 1)],
           f"{st} {body}")

    st, body = call("GET", f"{base}/schemas/ids/987654321")
    expect("GET /schemas/ids/{unknown} -> 404 40403", st == 404 and error_code(body) == 40403, f"{st} {body}")

    # --- versions ----------------------------------------------------------
    st, body = call("GET", f"{base}/subjects/{s1}/versions/latest")
    expect("GET /subjects/{s}/versions/latest",
           st == 200 and isinstance(body, dict) and body.get("subject") == s1 and body.get("id") == id1
           and body.get("version") == 1 and isinstance(body.get("schema"), str), f"{st} {body}")
    st, body = call("GET", f"{base}/subjects/{p}-nosuch/versions/latest")
    expect("GET /subjects/{unknown}/versions/latest -> 404 40401",
           st == 404 and error_code(body) == 40401, f"{st} {body}", quirk=st == 404)
    st, body = call("GET", f"{base}/subjects/{p}-nosuch/versions")
    expect("GET /subjects/{unknown}/versions -> 404 40401",
           st == 404 and error_code(body) == 40401, f"{st} {body}")
    st, body = call("GET", f"{base}/subjects/{s1}/versions/42")
    expect("GET /subjects/{s}/versions/{unknown} -> 404 40402",
           st == 404 and error_code(body) == 40402, f"{st} {body}")

    # --- compatibility -----------------------------------------------------
    url = f"{base}/compatibility/subjects/{s1}/versions/latest?verbose=true"
    st, body = call("POST", url, {"schema": v2_ok})
    expect("compatibility check, compatible schema",
           st == 200 and isinstance(body, dict) and body.get("is_compatible") is True, f"{st} {body}")
    st, body = call("POST", url, {"schema": v2_bad})
    ok = st == 200 and isinstance(body, dict) and body.get("is_compatible") is False
    expect("compatibility check, BACKWARD-incompatible schema (default config)", ok, f"{st} {body}")
    if isinstance(body, dict) and "messages" not in body:
        report("QUIRK", "verbose=true", f"no 'messages' in {body}")

    # Registering the incompatible schema: Confluent answers 409 (error_code 409).
    st, body = call("POST", f"{base}/subjects/{s1}/versions", {"schema": v2_bad})
    if expect("register a BACKWARD-incompatible schema (default config) -> 409",
              st == 409, f"{st} {body}"):
        expect("  ... with error_code 409", error_code(body) == 409, f"error_code {error_code(body)}",
               quirk=True)

    # --- config ------------------------------------------------------------
    st, body = call("PUT", f"{base}/config/{s1}", {"compatibility": "NONE"})
    expect("PUT /config/{s} NONE", st == 200 and isinstance(body, dict)
           and body.get("compatibility") == "NONE", f"{st} {body}")
    st, body = call("GET", f"{base}/config/{s1}")
    expect("GET /config/{s}", st == 200 and isinstance(body, dict)
           and body.get("compatibilityLevel") == "NONE", f"{st} {body}")
    st, body = call("POST", url, {"schema": v2_bad})
    expect("compatibility check after PUT /config/{s} NONE (global BACKWARD) -> compatible",
           st == 200 and isinstance(body, dict) and body.get("is_compatible") is True,
           f"{st} {body}", quirk=st == 200 and isinstance(body, dict) and "is_compatible" in body)

    st, body = call("PUT", f"{base}/config/{s1}", {"compatibility": "FORWARD"})
    expect("PUT /config/{s} FORWARD", st == 200 and isinstance(body, dict)
           and body.get("compatibility") == "FORWARD", f"{st} {body}")
    st, body = call("POST", url, {"schema": v2_bad})
    expect("compatibility check after PUT /config/{s} FORWARD (subject level wins)",
           st == 200 and isinstance(body, dict) and body.get("is_compatible") is True, f"{st} {body}")
    st, body = call("POST", f"{base}/subjects/{s1}/versions", {"schema": v2_bad})
    id_v2 = body.get("id") if isinstance(body, dict) else None
    expect("register after PUT /config/{s} FORWARD", st == 200 and isinstance(id_v2, int) and id_v2 != id1,
           f"{st} {body}")
    st, body = call("GET", f"{base}/subjects/{s1}/versions/latest")
    expect("latest is now version 2", st == 200 and isinstance(body, dict) and body.get("version") == 2
           and body.get("id") == id_v2, f"{st} {body}")
    st, body = call("GET", f"{base}/subjects/{s1}/versions/1")
    expect("GET /subjects/{s}/versions/1", st == 200 and isinstance(body, dict) and body.get("version") == 1
           and body.get("id") == id1, f"{st} {body}")

    st, body = call("GET", f"{base}/config/{s2}")
    expect("GET /config/{s} without a subject config (Confluent: 404 40408)",
           st == 404 and error_code(body) == 40408, f"{st} {body}", quirk=True)
    st, body = call("GET", f"{base}/config/{s2}?defaultToGlobal=true")
    expect("GET /config/{s}?defaultToGlobal=true without a subject config -> the global level",
           st == 200 and isinstance(body, dict) and body.get("compatibilityLevel") == g_level,
           f"{st} {body} (global {g_level})", quirk=True)

    st, body = call("PUT", f"{base}/config", {"compatibility": "FULL"})
    expect("PUT /config", st == 200 and isinstance(body, dict) and body.get("compatibility") == "FULL",
           f"{st} {body}")
    st, body = call("GET", f"{base}/config")
    expect("GET /config after PUT", st == 200 and isinstance(body, dict)
           and body.get("compatibilityLevel") == "FULL", f"{st} {body}")
    if g_level:
        st, body = call("PUT", f"{base}/config", {"compatibility": g_level})
        expect("restore global config", st == 200, f"{st} {body}")

    st, body = call("GET", base + "/subjects")
    mine = sorted(s for s in body if s.startswith(p)) if isinstance(body, list) else body
    expect("GET /subjects lists the new subjects", mine == sorted([s1, s2, s3]), f"{st} {mine}")

    failed = results["FAIL"]
    print(f"{results['ok'] + results['QUIRK']} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
