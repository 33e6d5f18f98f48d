#!/usr/bin/env python3
"""Validates KEDA ScaledObjects offline.

  check_scaledobject.py CRD.yaml MANIFEST.yaml...

CRD.yaml is KEDA's CustomResourceDefinition (keda.sh_scaledobjects.yaml).
Each ScaledObject is validated with jsonschema against the openAPIV3Schema
of the CRD version its apiVersion names, made strict as kubectl's
server-side field validation is: a field the schema does not declare is an
error, not silently pruned. A trigger's metadata is a free map of strings
in the CRD, so the Kafka scaler's keys are checked here against the keys
KEDA documents for it, with the values the scaler parses.

Prints one "ok - ..." / "not ok - ..." line per object; exits 1 if any failed.
"""
import copy
import sys

import jsonschema
import yaml

# The Kafka scaler's metadata keys, from the trigger specification of
# KEDA's documentation of the "kafka" trigger:
# https://keda.sh/docs/scalers/apache-kafka/ (SASL and TLS secrets go
# through a TriggerAuthentication, not the metadata).
KAFKA_KEYS = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold",
    "activationLagThreshold", "offsetResetPolicy",
    "allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
    "limitToPartitionsWithLag", "version", "partitionLimitation", "sasl", "tls", "unsafeSsl",
}
# What relay's ScaledObjects must say: which brokers, group and topic (the
# scaler could guess the topics of a group, but the cap "replicas <=
# partitions" is per topic) and the lag per replica.
KAFKA_REQUIRED = {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"}
BOOLEAN_KEYS = {"allowIdleConsumers", "scaleToZeroOnInvalidOffset", "excludePersistentLag",
                "limitToPartitionsWithLag", "unsafeSsl"}


def strict(schema):
    """The schema with additionalProperties: false wherever an object lists
    its properties and says nothing of others."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node \
                    and "additionalProperties" not in node \
                    and not node.get("x-kubernetes-preserve-unknown-fields"):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(s)
    return s


def kafka_errors(md):
    errs = [f"unknown key {k}" for k in sorted(set(md) - KAFKA_KEYS)]
    errs += [f"missing key {k}" for k in sorted(KAFKA_REQUIRED - set(md))]
    for k in ("lagThreshold", "activationLagThreshold"):
        if k in md and not (str(md[k]).isdigit() and int(md[k]) > 0 or
                            k == "activationLagThreshold" and str(md[k]) == "0"):
            errs.append(f"{k} {md[k]!r} is not a positive integer")
    if md.get("offsetResetPolicy", "latest") not in ("latest", "earliest"):
        errs.append(f"offsetResetPolicy {md['offsetResetPolicy']!r} is not latest or earliest")
    for k in BOOLEAN_KEYS & set(md):
        if md[k] not in ("true", "false"):
            errs.append(f"{k} {md[k]!r} is not 'true' or 'false'")
    return errs


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    with open(argv[1]) as f:
        crd = yaml.safe_load(f)
    group = crd["spec"]["group"]
    schemas = {f"{group}/{v['name']}": strict(v["schema"]["openAPIV3Schema"])
               for v in crd["spec"]["versions"] if v.get("served")}
    failed = 0
    for path in argv[2:]:
        with open(path) as f:
            objs = [d for d in yaml.safe_load_all(f) if d]
        for obj in objs:
            name = f"{path} {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            errs = []
            if obj.get("kind") != crd["spec"]["names"]["kind"]:
                errs.append(f"kind is not {crd['spec']['names']['kind']}")
            schema = schemas.get(obj.get("apiVersion"))
            if schema is None:
                errs.append(f"apiVersion {obj.get('apiVersion')} is not one of {sorted(schemas)}")
            else:
                v = jsonschema.Draft7Validator(schema)
                errs += [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
                         for e in sorted(v.iter_errors(obj), key=lambda e: list(e.absolute_path))]
            for i, t in enumerate(obj.get("spec", {}).get("triggers") or []):
                if t.get("type") == "kafka":
                    errs += [f"triggers/{i}/metadata: {e}" for e in kafka_errors(t.get("metadata") or {})]
                else:
                    errs.append(f"triggers/{i}: type {t.get('type')!r}, expected kafka")
            if errs:
                failed += 1
                print(f"not ok - {name}: " + "; ".join(errs))
            else:
                print(f"ok - {name}: valid against the CRD, Kafka scaler keys documented")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
