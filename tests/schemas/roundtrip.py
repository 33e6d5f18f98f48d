#!/usr/bin/env python3
"""Round trip of every schema in the catalogue between relay's Avro code and
fastavro, an independent implementation.

For every subject (<topic>-value) in schemas/manifest.cfg, on the samples
in samples/<topic>.jsonl (or samples/<schema file stem>.jsonl, shared by
all topics of one schema, e.g. outbound.jsonl for every out.<platform>):

  (a) relay encodes (avro_roundtrip encode: relay_avro_from_json +
      relay_avro_writer_encode); the frame must start with magic 0 and the
      subject's newest id from the manifest, and fastavro must read the body
      (every byte of it) back to the sample, field by field. The body must
      also be byte-identical to fastavro's own encoding of the sample:
      Avro binary has one encoding per value and union branch, so a
      difference means relay picked another branch or encoded differently.
  (b) fastavro encodes (schemaless_writer, framed with the id); relay
      decodes (avro_roundtrip decode: relay_avro_reader_decode +
      relay_avro_to_json) back to the sample, field by field.
  (c) the samples of each schema take every branch of every union, every
      symbol of every enum, and every map and array both empty and not,
      and every union can be written from natural JSON the same way by
      relay and fastavro (no two branches that one JSON value could take).

  (d) the compiled path (avro_roundtrip recode: relay_avro_reader_decode_
      slots + relay_shape_encode) re-encodes fastavro's frames of (b) byte
      for byte as avro-c does (checked by the tool) and as fastavro wrote
      them, and fastavro reads its output back to the sample.

Samples are natural JSON, the form relay_avro_from_json takes: unions
unwrapped, null for an absent optional (a missing optional field means its
default), logical types as their underlying Avro type (uuid: the canonical
lowercase string; timestamp-millis: integer milliseconds since the epoch;
date: integer days since 1970-01-01). fastavro's logical values
(datetime, date, UUID) are converted to the same forms before comparing,
so logical types are checked too.

Exits 0 when everything matches, 1 with one line per problem naming the
topic, the sample line and the field (any mismatch fails the run), 2 on
bad usage or input files.
"""
import argparse
import datetime
import io
import json
import os
import re
import struct
import subprocess
import sys
import uuid

import fastavro

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
EPOCH_DATE = datetime.date(1970, 1, 1)
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes",
              "string"}


class InputError(Exception):
    """A bad manifest, schema or sample file: the test cannot run."""


# ---- the manifest (the subset of libconfig that manifest.cfg uses) ----

TOKEN = re.compile(r'''
    (?P<ws>\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F]+|\d+)L?)
  | (?P<name>[A-Za-z*][-A-Za-z0-9_*]*)
  | (?P<punct>[=:;,(){}\[\]])
''', re.S | re.X)


def parse_manifest(path):
    """The manifest's schema entries as dicts (id, version, subjects, file,
    line). Only what relay_schemas_load reads; anything else is an error
    here rather than a silent misreading."""
    text = open(path, encoding="utf-8").read()
    toks, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise InputError(f"{path}:{line}: cannot parse near {text[pos:pos + 20]!r}")
        if m.lastgroup != "ws":
            toks.append((m.lastgroup, m.group(), text.count("\n", 0, pos) + 1))
        pos = m.end()
    toks.append(("end", "", text.count("\n") + 1))
    i = 0

    def expect(kind, value=None):
        nonlocal i
        k, v, line = toks[i]
        if k != kind or (value is not None and v != value):
            raise InputError(f"{path}:{line}: expected {value or kind}, got {v!r}")
        i += 1
        return v, line

    def value():
        nonlocal i
        k, v, line = toks[i]
        if k == "str":
            i += 1
            return json.loads(v)
        if k == "num":
            i += 1
            return int(v.rstrip("L"), 0)
        if v in ("(", "["):
            close = ")" if v == "(" else "]"
            i += 1
            items = []
            while toks[i][1] != close:
                items.append(value())
                if toks[i][1] == ",":
                    i += 1
            i += 1
            return items
        if v == "{":
            i += 1
            group = {"_line": line}
            while toks[i][1] != "}":
                name, _ = expect("name")
                if toks[i][1] not in ("=", ":"):
                    raise InputError(f"{path}:{toks[i][2]}: expected = after {name}")
                i += 1
                group[name] = value()
                if toks[i][1] in (";", ","):
                    i += 1
            i += 1
            return group
        raise InputError(f"{path}:{line}: unexpected {v!r}")

    settings = {}
    while toks[i][0] != "end":
        name, _ = expect("name")
        if toks[i][1] not in ("=", ":"):
            raise InputError(f"{path}:{toks[i][2]}: expected = after {name}")
        i += 1
        settings[name] = value()
        if toks[i][1] == ";":
            i += 1
    entries = []
    for e in settings.get("schemas", []):
        subjects = e.get("subject")
        if isinstance(subjects, str):
            subjects = [subjects]
        if "id" not in e or "file" not in e or not subjects:
            raise InputError(f"{path}:{e['_line']}: entry needs id, file and subject")
        entries.append({"id": e["id"], "version": e.get("version", 1),
                        "subjects": subjects, "file": e["file"],
                        "line": e["_line"]})
    if not entries:
        raise InputError(f"{path}: no schemas")
    return entries


# ---- schema walking ----

class Schema:
    """One .avsc with its named types resolved, for walking values."""

    def __init__(self, path):
        self.path = path
        self.raw = json.load(open(path, encoding="utf-8"))
        self.parsed = fastavro.parse_schema(self.raw)
        self.names = {}
        self.raw = self._collect(self.raw, None)

    def _fullname(self, name, ns):
        if "." in name or not ns:
            return name
        return ns + "." + name

    def _collect(self, s, ns):
        """Record every named type under its full name and rewrite name
        references to full names, so that resolve() needs no namespace."""
        if isinstance(s, str):
            if s in PRIMITIVES or s in self.names:
                return s
            full = self._fullname(s, ns)
            if full not in self.names:
                raise InputError(f"{self.path}: unknown type name {s}")
            return full
        if isinstance(s, list):
            return [self._collect(b, ns) for b in s]
        t = s.get("type")
        if t in ("record", "error", "enum", "fixed"):
            full = self._fullname(s["name"], s.get("namespace", ns))
            self.names[full] = s
            s["_fullname"] = full
            ns = full.rpartition(".")[0] or None
            for f in s.get("fields", []):
                f["type"] = self._collect(f["type"], ns)
        elif t == "array":
            s["items"] = self._collect(s["items"], ns)
        elif t == "map":
            s["values"] = self._collect(s["values"], ns)
        elif isinstance(t, (dict, list)) or (isinstance(t, str) and t not in PRIMITIVES):
            s["type"] = self._collect(t, ns)
        return s

    def resolve(self, s):
        """Follow a name to its definition; unwrap {"type": <name or primitive>}."""
        while True:
            if isinstance(s, str):
                if s in PRIMITIVES:
                    return {"type": s}
                return self.names[s]
            if isinstance(s, dict) and isinstance(s.get("type"), str) \
                    and s["type"] not in PRIMITIVES | {"record", "error", "enum",
                                                       "fixed", "array", "map"}:
                s = s["type"]  # a name wrapped in {"type": ...}
                continue
            if isinstance(s, dict) and isinstance(s.get("type"), (dict, list)):
                s = s["type"]
                continue
            return s


def label(schema, s):
    """A short name of a union branch, e.g. long(timestamp-millis)."""
    r = schema.resolve(s)
    if isinstance(r, list):
        return "union"
    t = r["type"]
    if "_fullname" in r:
        return r["_fullname"]
    if t == "array":
        return f"array<{label(schema, r['items'])}>"
    if t == "map":
        return f"map<{label(schema, r['values'])}>"
    lt = r.get("logicalType")
    return f"{t}({lt})" if lt else t


# JSON kinds of natural JSON values, and the Avro types each may fill.
def json_kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "real"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    raise TypeError(type(v))


# relay_avro_from_json's choice (common/avro/ union_branch_for): by JSON
# kind, these Avro types in this order, the first branch of that type.
RELAY_PREFERENCE = {
    "null": ["null"], "boolean": ["boolean"],
    "integer": ["long", "int", "double", "float"], "real": ["double", "float"],
    "string": ["string", "enum", "bytes"], "object": ["record", "map"],
    "array": ["array"],
}
# What fastavro's writer accepts per kind; it takes the first branch in
# union order that accepts the value (for several records, the best fit).
FASTAVRO_ACCEPTS = {
    "null": {"null"}, "boolean": {"boolean"},
    "integer": {"int", "long", "float", "double"}, "real": {"float", "double"},
    "string": {"string", "enum"}, "object": {"record", "map"},
    "array": {"array"},
}


def relay_branch(schema, union, v):
    types = [schema.resolve(b)["type"] for b in union]
    kind = json_kind(v)
    for want in RELAY_PREFERENCE[kind]:
        for i, t in enumerate(types):
            if t != want:
                continue
            if t == "enum" and v not in schema.resolve(union[i])["symbols"]:
                continue
            return i
    return -1


def fastavro_branch(schema, union, v):
    kind = json_kind(v)
    for i, b in enumerate(union):
        r = schema.resolve(b)
        if r["type"] in FASTAVRO_ACCEPTS[kind]:
            if r["type"] == "enum" and v not in r["symbols"]:
                continue
            return i
    return -1


def lint_unions(schema):
    """Unions relay and fastavro would fill differently from natural JSON,
    or with a branch natural JSON can never select."""
    problems, seen = [], set()
    name = os.path.basename(schema.path)

    def walk(s, where):
        r = schema.resolve(s)
        if isinstance(r, list):
            probes = {"null": [None], "boolean": [True], "integer": [1],
                      "real": [1.5], "object": [{}], "array": [[]],
                      "string": ["\x00not-a-symbol"]}
            for b in r:
                rb = schema.resolve(b)
                if rb["type"] == "enum":
                    probes["string"] += rb["symbols"]
            chosen = set()
            for kind, values in probes.items():
                for v in values:
                    a, f = relay_branch(schema, r, v), fastavro_branch(schema, r, v)
                    if a >= 0:
                        chosen.add(a)
                    if a != f and a >= 0:
                        problems.append(
                            f"{name}: union at {where}: for a JSON {kind} {v!r} relay "
                            f"writes branch {label(schema, r[a])} but fastavro "
                            f"{label(schema, r[f]) if f >= 0 else 'none'}")
            objects = [b for b in r if schema.resolve(b)["type"] in ("record", "map")]
            if len(objects) > 1:
                problems.append(f"{name}: union at {where}: several object branches "
                                f"({', '.join(label(schema, b) for b in objects)}); relay "
                                "always takes the first")
            for i, b in enumerate(r):
                if i not in chosen:
                    problems.append(f"{name}: union at {where}: branch "
                                    f"{label(schema, b)} cannot be written from natural JSON "
                                    "by relay_avro_from_json")
            for b in r:
                walk(b, where + f"<{label(schema, b)}>")
            return
        t = r["type"]
        if "_fullname" in r:
            if r["_fullname"] in seen:
                return
            seen.add(r["_fullname"])
            where = r["_fullname"]
        if t in ("record", "error"):
            for f in r["fields"]:
                walk(f["type"], where + "." + f["name"])
        elif t == "array":
            walk(r["items"], where + "[]")
        elif t == "map":
            walk(r["values"], where + "{}")

    walk(schema.raw, "")
    return problems


def all_targets(schema):
    """Everything the samples must cover: (kind, where, what)."""
    out, seen = set(), set()

    def walk(s, where):
        r = schema.resolve(s)
        if isinstance(r, list):
            for b in r:
                out.add(("branch", where, label(schema, b)))
                walk(b, where + f"<{label(schema, b)}>")
            return
        t = r["type"]
        if "_fullname" in r:
            if r["_fullname"] in seen:
                return
            seen.add(r["_fullname"])
            where = r["_fullname"]
        if t in ("record", "error"):
            for f in r["fields"]:
                walk(f["type"], where + "." + f["name"])
        elif t == "enum":
            for sym in r["symbols"]:
                out.add(("symbol", where, sym))
        elif t in ("array", "map"):
            out.add((t, where, "empty"))
            out.add((t, where, "non-empty"))
            walk(r["items"] if t == "array" else r["values"],
                 where + ("[]" if t == "array" else "{}"))

    walk(schema.raw, "")
    return out


# ---- samples: checked against the schema, expected forms, coverage ----

def expected(schema, s, v, path, where, covered):
    """The sample value v of schema s as relay's natural JSON (defaults
    filled in, doubles as floats), recording coverage. Raises InputError
    when the sample does not fit."""
    r = schema.resolve(s)
    if isinstance(r, list):
        i = relay_branch(schema, r, v)
        if i < 0:
            raise InputError(f"{path}: {v!r} fits no branch of the union")
        branch = label(schema, r[i])
        covered.add(("branch", where, branch))
        return expected(schema, r[i], v, path, where + f"<{branch}>", covered)
    t = r["type"]
    if "_fullname" in r:
        where = r["_fullname"]
    kind = json_kind(v)
    if t in ("record", "error"):
        if kind != "object":
            raise InputError(f"{path}: expected an object")
        names = [f["name"] for f in r["fields"]]
        extra = set(v) - set(names)
        if extra:
            raise InputError(f"{path}: fields not in the schema: {sorted(extra)}")
        out = {}
        for f in r["fields"]:
            fp = f"{path}.{f['name']}" if path else f["name"]
            if f["name"] in v:
                fv = v[f["name"]]
            elif "default" in f:
                fv = f["default"]
            else:
                raise InputError(f"{fp}: missing, and the field has no default")
            out[f["name"]] = expected(schema, f["type"], fv, fp, where + "." + f["name"],
                                      covered)
        return out
    if t == "map":
        if kind != "object":
            raise InputError(f"{path}: expected an object (map)")
        covered.add(("map", where, "non-empty" if v else "empty"))
        return {k: expected(schema, r["values"], x, f"{path}.{k}", where + "{}", covered)
                for k, x in v.items()}
    if t == "array":
        if kind != "array":
            raise InputError(f"{path}: expected an array")
        covered.add(("array", where, "non-empty" if v else "empty"))
        return [expected(schema, r["items"], x, f"{path}[{n}]", where + "[]", covered)
                for n, x in enumerate(v)]
    if t == "enum":
        if v not in r["symbols"]:
            raise InputError(f"{path}: {v!r} is not a symbol of {r['_fullname']}")
        covered.add(("symbol", where, v))
        return v
    ok = {"null": kind == "null", "boolean": kind == "boolean",
          "int": kind == "integer" and -2**31 <= v < 2**31,
          "long": kind == "integer" and -2**63 <= v < 2**63,
          "float": kind in ("integer", "real"), "double": kind in ("integer", "real"),
          "string": kind == "string", "bytes": kind == "string"}.get(t, False)
    if not ok:
        raise InputError(f"{path}: {v!r} does not fit Avro type {t}")
    if r.get("logicalType") == "uuid" and str(uuid.UUID(v)) != v:
        raise InputError(f"{path}: {v!r} is not a canonical lowercase UUID")
    if t in ("float", "double"):
        return float(v)
    return v


def to_fastavro(schema, s, v):
    """The natural-JSON sample as a fastavro datum."""
    r = schema.resolve(s)
    if isinstance(r, list):
        return to_fastavro(schema, r[relay_branch(schema, r, v)], v)
    t = r["type"]
    if t in ("record", "error"):
        # A missing optional stays missing: fastavro fills its default.
        return {f["name"]: to_fastavro(schema, f["type"], v[f["name"]])
                for f in r["fields"] if f["name"] in v}
    if t == "map":
        return {k: to_fastavro(schema, r["values"], x) for k, x in v.items()}
    if t == "array":
        return [to_fastavro(schema, r["items"], x) for x in v]
    return v


def from_fastavro(v):
    """fastavro's read value in natural JSON: logical types back to their
    sample forms."""
    if isinstance(v, dict):
        return {k: from_fastavro(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_fastavro(x) for x in v]
    if isinstance(v, datetime.datetime):
        return (v - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(v, datetime.date):
        return (v - EPOCH_DATE).days
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, bytes):
        return "bytes:" + v.hex()
    return v


def diff(want, got, path):
    """Field-by-field differences, strict about JSON types (1 is not 1.0 or
    true); a missing key is reported as missing, not as null."""
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for k in want:
            p = f"{path}.{k}" if path else k
            if k not in got:
                out.append(f"{p}: missing (expected {json.dumps(want[k], ensure_ascii=False)})")
            else:
                out += diff(want[k], got[k], p)
        for k in got:
            if k not in want:
                out.append(f"{path + '.' if path else ''}{k}: unexpected field")
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{path}: {len(got)} items, expected {len(want)}"]
        return [d for n, (a, b) in enumerate(zip(want, got)) for d in diff(a, b, f"{path}[{n}]")]
    if type(want) is not type(got) or want != got:
        return [f"{path}: got {json.dumps(got, ensure_ascii=False, default=repr)}, expected "
                f"{json.dumps(want, ensure_ascii=False)}"]
    return []


def strict_json(text):
    def pairs(kv):
        d = {}
        for k, v in kv:
            if k in d:
                raise ValueError(f"duplicate key {k!r}")
            d[k] = v
        return d

    def bad_constant(c):
        raise ValueError(f"{c} is not JSON")
    return json.loads(text, object_pairs_hook=pairs, parse_constant=bad_constant)


def run_tool(tool, mode, manifest, subject, lines):
    p = subprocess.run([tool, mode, manifest, subject], input="".join(
        line + "\n" for line in lines).encode(), capture_output=True)
    return p.returncode, p.stdout.decode("utf-8", "replace").splitlines(), \
        p.stderr.decode("utf-8", "replace").strip()


# ---- the checks ----

class Results:
    def __init__(self):
        self.failures = []

    def fail(self, msg):
        self.failures.append(msg)


def report(res, where, direction, diffs):
    """Report the diffs of one sample in one direction: each one fails."""
    for d in diffs:
        res.fail(f"{where}: {direction}: {d}")


def check_subject(args, subject, entry, schema, samples, res):
    topic = subject[:-len("-value")]
    where = lambda n: f"{topic} line {n}"  # noqa: E731
    header = b"\0" + struct.pack(">I", entry["id"])

    # (a) relay encodes, fastavro decodes.
    rc, out, err = run_tool(args.tool, "encode", args.manifest, subject,
                            [json.dumps(s, ensure_ascii=False) for _, s, _ in samples])
    if rc != 0 or len(out) != len(samples):
        res.fail(f"{topic}: relay encode failed after {len(out)} of {len(samples)} "
                 f"samples (exit {rc}): {err}")
    for (n, sample, want), hexline in zip(samples, out):
        frame = bytes.fromhex(hexline)
        if frame[:1] != b"\0":
            res.fail(f"{where(n)}: relay frame starts with {frame[:1]!r}, not magic 0")
            continue
        (fid,) = struct.unpack(">I", frame[1:5])
        if fid != entry["id"]:
            res.fail(f"{where(n)}: relay framed schema id {fid}, manifest says {entry['id']}")
            continue
        body = io.BytesIO(frame[5:])
        try:
            rec = fastavro.schemaless_reader(body, schema.parsed)
        except Exception as e:  # any fastavro error is the finding
            res.fail(f"{where(n)}: fastavro cannot read relay's encoding: {e!r}")
            continue
        if body.tell() != len(frame) - 5:
            res.fail(f"{where(n)}: relay wrote {len(frame) - 5 - body.tell()} bytes "
                     "more than the record")
        report(res, where(n), "relay encode -> fastavro decode",
               diff(want, from_fastavro(rec), ""))
        ref = io.BytesIO()
        fastavro.schemaless_writer(ref, schema.parsed, to_fastavro(schema, schema.raw, sample))
        if ref.getvalue() != frame[5:]:
            a, b = frame[5:], ref.getvalue()
            at = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]),
                      min(len(a), len(b)))
            res.fail(f"{where(n)}: relay's Avro body differs from fastavro's from body "
                     f"byte {at} (relay {a[at:at + 8].hex()}…, fastavro "
                     f"{b[at:at + 8].hex()}…; {len(a)} vs {len(b)} bytes)")

    # (b) fastavro encodes, relay decodes.
    frames = []
    for _, sample, _ in samples:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema.parsed, to_fastavro(schema, schema.raw, sample))
        frames.append((header + buf.getvalue()).hex())
    rc, out, err = run_tool(args.tool, "decode", args.manifest, subject, frames)
    if rc != 0 or len(out) != len(samples):
        res.fail(f"{topic}: relay decode failed after {len(out)} of {len(samples)} "
                 f"frames (exit {rc}): {err}")
    for (n, _, want), text in zip(samples, out):
        try:
            got = strict_json(text)
        except ValueError as e:
            res.fail(f"{where(n)}: relay decode printed bad JSON ({e}): {text}")
            continue
        report(res, where(n), "fastavro encode -> relay decode", diff(want, got, ""))

    # (d) the compiled path re-encodes fastavro's frames.
    rc, out, err = run_tool(args.tool, "recode", args.manifest, subject, frames)
    if rc != 0 or len(out) != len(samples):
        res.fail(f"{topic}: compiled recode failed after {len(out)} of {len(samples)} "
                 f"frames (exit {rc}): {err}")
    for (n, _, want), sent, hexline in zip(samples, frames, out):
        frame = bytes.fromhex(hexline)
        if frame[5:] != bytes.fromhex(sent)[5:]:
            res.fail(f"{where(n)}: the compiled path's body differs from fastavro's")
            continue
        body = io.BytesIO(frame[5:])
        try:
            rec = fastavro.schemaless_reader(body, schema.parsed)
        except Exception as e:  # any fastavro error is the finding
            res.fail(f"{where(n)}: fastavro cannot read the compiled path's encoding: {e!r}")
            continue
        report(res, where(n), "fastavro encode -> compiled recode -> fastavro decode",
               diff(want, from_fastavro(rec), ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tool", required=True, help="the avro_roundtrip binary")
    ap.add_argument("--manifest", required=True, help="schemas/manifest.cfg")
    ap.add_argument("--samples", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "samples"), help="directory of <topic>.jsonl")
    ap.add_argument("-v", "--verbose", action="store_true", help="list what was covered")
    args = ap.parse_args()

    res = Results()
    try:
        entries = parse_manifest(args.manifest)
        base = os.path.dirname(os.path.abspath(args.manifest))
        schemas = {e["id"]: Schema(os.path.join(base, e["file"])) for e in entries}
        # The newest version of each subject is what relay writes and reads.
        newest = {}
        for e in entries:
            for subj in e["subjects"]:
                if subj not in newest or e["version"] > newest[subj]["version"]:
                    newest[subj] = e
        covered = {sid: set() for sid in schemas}
        sampled = set()
        for subject, entry in sorted(newest.items()):
            if not subject.endswith("-value"):
                res.fail(f"{subject}: not a TopicNameStrategy subject (<topic>-value)")
                continue
            topic = subject[:-len("-value")]
            stem = os.path.splitext(entry["file"])[0]
            path = next((p for p in (os.path.join(args.samples, topic + ".jsonl"),
                                     os.path.join(args.samples, stem + ".jsonl"))
                         if os.path.exists(p)), None)
            if not path:
                res.fail(f"{topic}: no samples ({topic}.jsonl or {stem}.jsonl)")
                continue
            schema = schemas[entry["id"]]
            samples = []
            for n, line in enumerate(open(path, encoding="utf-8"), 1):
                if not line.strip():
                    continue
                try:
                    sample = strict_json(line)
                    want = expected(schema, schema.raw, sample, "", "",
                                    covered[entry["id"]])
                except (ValueError, InputError) as e:
                    raise InputError(f"{path}:{n}: {e}")
                samples.append((n, sample, want))
            if len(samples) < 2:
                res.fail(f"{topic}: {path} needs several samples")
            sampled.add(entry["id"])
            check_subject(args, subject, entry, schema, samples, res)
            print(f"{topic}: schema id {entry['id']}, {len(samples)} samples from "
                  f"{os.path.basename(path)}")
    except InputError as e:
        print(f"roundtrip: {e}", file=sys.stderr)
        return 2

    # (c) coverage and union lint, per schema (subjects of one schema share it).
    totals = {}
    for sid, schema in sorted(schemas.items()):
        for problem in lint_unions(schema):
            res.fail(problem)
        if sid not in sampled:
            continue
        targets = all_targets(schema)
        missing = sorted(targets - covered[sid])
        for kind, where, what in missing:
            res.fail(f"{os.path.basename(schema.path)}: samples never cover {kind} "
                            f"{what} at {where or '(top)'}")
        for kind in ("branch", "symbol", "map", "array"):
            t = sum(1 for x in targets if x[0] == kind)
            c = sum(1 for x in targets & covered[sid] if x[0] == kind)
            totals.setdefault(kind, [0, 0])
            totals[kind][0] += c
            totals[kind][1] += t
            if args.verbose and t:
                print(f"  {os.path.basename(schema.path)}: {kind} {c}/{t}")
    print("coverage: " + ", ".join(
        f"{kind if kind != 'map' and kind != 'array' else kind + ' empty/non-empty'} "
        f"{c}/{t}" for kind, (c, t) in totals.items()))

    for f in res.failures:
        print("FAIL " + f)
    if res.failures:
        print(f"{len(res.failures)} problem(s)")
        return 1
    print("all schemas round-trip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
