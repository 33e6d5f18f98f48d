#!/usr/bin/env python3
"""Keeps deploy/ in step with the configs, the tests and the code.

The compose file, the Kubernetes and KEDA manifests, the Prometheus and
Grafana files must name the same topics, partitions, consumer groups,
ports, config files and environment variables as deploy/config/*.cfg,
tests/integration/lib.sh (what the tests run) and the C sources (the
default group names, the config keys the variables stand for). Run from
anywhere; prints one "ok - ..." / "not ok - ..." line per check and exits 1
if any failed.

  check_in_step.py                  check
  check_in_step.py --write-configmap  rewrite deploy/k8s/configmap.yaml from deploy/config
"""
import glob
import os
import re
import sys

import yaml

SRC = os.environ.get("RELAY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
ADMIN_PORT = 9400
failed = 0


def check(good, what):
    global failed
    print(("ok - " if good else "not ok - ") + what)
    if not good:
        failed += 1


def read(path):
    with open(os.path.join(SRC, path)) as f:
        return f.read()


def docs(path):
    return [d for d in yaml.safe_load_all(read(path)) if d]


def cfg_value(text, key):
    """A string value of a libconfig file (first `key = "value";`)."""
    m = re.search(r'^\s*%s\s*=\s*"([^"]*)"' % re.escape(key), text, re.M)
    return m.group(1) if m else None


def xopts(cmd):
    """The -X name=value pairs of a worker's command line."""
    return dict(cmd[i + 1].split("=", 1) for i, a in enumerate(cmd[:-1]) if a == "-X")


def cfg_of(cmd):
    return cmd[cmd.index("-c") + 1]


def env_of(key):
    """conf.c's env_of(): "mparticle.api_key" -> RELAY_MPARTICLE_API_KEY."""
    return "RELAY_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


# ---------------------------------------------------------------- inputs
CONFIG_FILES = sorted(os.path.relpath(p, os.path.join(SRC, "deploy/config"))
                      for p in glob.glob(os.path.join(SRC, "deploy/config/**/*.cfg"), recursive=True))


def configmap_text():
    out = ["# Generated from deploy/config by tests/deploy/check_in_step.py",
           "# --write-configmap; the check fails when the two differ. Mounted",
           "# at /etc/relay/deploy/config; the schemas are in the image.",
           "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: relay-config",
           "  labels:", "    app.kubernetes.io/name: relay", "data:"]
    for rel in CONFIG_FILES:
        out.append(f"  {os.path.basename(rel)}: |")
        out += [("    " + line).rstrip() for line in read("deploy/config/" + rel).splitlines()]
    return "\n".join(out) + "\n"


if "--write-configmap" in sys.argv[1:]:
    with open(os.path.join(SRC, "deploy/k8s/configmap.yaml"), "w") as f:
        f.write(configmap_text())
    sys.exit(0)

compose = yaml.safe_load(read("docker-compose.yml"))["services"]
libsh = read("tests/integration/lib.sh")
libsh_code = "\n".join(l for l in libsh.splitlines() if not l.lstrip().startswith("#"))
c_sources = "".join(read(os.path.relpath(p, SRC))
                    for p in glob.glob(os.path.join(SRC, "common/**/*.c"), recursive=True))
k8s = [d for p in sorted(glob.glob(os.path.join(SRC, "deploy/k8s/*.yaml")))
       for d in docs(os.path.relpath(p, SRC))]
keda = [d for p in sorted(glob.glob(os.path.join(SRC, "deploy/keda/*.yaml")))
        for d in docs(os.path.relpath(p, SRC))]
deployments = {d["metadata"]["name"]: d for d in k8s if d["kind"] == "Deployment"}
configmap = next((d for d in k8s if d["kind"] == "ConfigMap"), {"data": {}})
scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in keda if d["kind"] == "ScaledObject"}

# Topics the tests create (lib.sh broker's default), TOPIC -> partitions.
m = re.search(r"\|\| topics=\(([^)]*)\)", libsh_code)
test_topics = dict((t.split(":")[0], int(t.split(":")[1])) for t in m.group(1).split())
m = re.search(r"for t in ([^;]*);", compose["kafka-topics"]["command"][0])
compose_topics = dict((t.split(":")[0], int(t.split(":")[1])) for t in m.group(1).split())
check(compose_topics == test_topics,
      f"compose creates the tests' topics {sorted(test_topics.items())}"
      + ("" if compose_topics == test_topics else f", not {sorted(compose_topics.items())}"))
nparts = int(compose["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"])


# What each worker consumes, from its cfg file and the defaults in the C code.
def worker_io(binary, cfg):
    text = read(cfg)
    if binary == "relay-transform":
        topic = cfg_value(text, "topic")
        fmt = "relay-transform-%s"
        outs = [f"out.{d}" for d in re.findall(r'destination\s*=\s*"([^"]+)"',
                "".join(read(p) for p in
                        glob.glob(os.path.join(SRC, cfg_value(text, "connections"), "*.cfg"))))]
        dlq = cfg_value(text, "dlq_topic")
        group = cfg_value(text, "group_id") or fmt % topic
    else:
        platform = cfg_value(text, "platform")
        topic, fmt = f"out.{platform}", "relay-deliver-%s"
        outs, dlq = [], cfg_value(text, "dlq_topic") or f"dlq.{platform}"
        group = cfg_value(text, "group_id") or fmt % platform
    check(f'"{fmt}"' in c_sources, f"{binary}'s default group {fmt} is the C code's")
    return {"topic": topic, "outs": outs, "dlq": dlq, "group": group,
            "reset": cfg_value(text, "auto_offset_reset") or "latest"}


# ---------------------------------------------------------------- compose
workers = {n: s for n, s in compose.items() if str(s.get("command", [""])[0]).startswith("relay-")}
check(set(workers) == {"transform", "deliver-mparticle"},
      f"compose runs every worker ({', '.join(sorted(workers))})")
for name, svc in workers.items():
    cmd = svc["command"]
    x = xopts(cmd)
    binary, cfg = cmd[0], cfg_of(cmd)
    check(os.path.isfile(os.path.join(SRC, cfg)), f"compose {name}: {cfg} exists")
    check(re.search(r'"\$BIN/%s" -c %s\b' % (binary, re.escape(cfg)), libsh_code) is not None,
          f"compose {name}: {binary} -c {cfg} as tests/integration/lib.sh runs it")
    io = worker_io(binary, cfg)
    for t in [io["topic"], io["dlq"]] + io["outs"]:
        check(t in test_topics, f"compose {name}: topic {t} is created by the tests and compose")
    check(x.get("admin.port") == str(ADMIN_PORT), f"compose {name}: -X admin.port={ADMIN_PORT}")
    hc = " ".join(svc.get("healthcheck", {}).get("test", []))
    check(f"127.0.0.1:{ADMIN_PORT}/healthz" in hc, f"compose {name}: healthcheck on /healthz")
    listeners = compose["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    check(x.get("kafka.bootstrap.servers", "") in [l.split("://")[1] for l in listeners.split(",")],
          f"compose {name}: bootstrap {x.get('kafka.bootstrap.servers')} is an advertised listener")
    reg = re.match(r"http://([^:/]+):(\d+)", x.get("schema_registry.url", ""))
    check(reg and reg.group(1) in compose and
          any(p.endswith(":" + reg.group(2)) for p in compose[reg.group(1)].get("ports", [])),
          f"compose {name}: schema_registry.url names the registry's service and port")
    check(io["topic"] in test_topics and test_topics[io["topic"]] == nparts,
          f"compose {name}: {io['topic']} has KAFKA_NUM_PARTITIONS={nparts} partitions")

# The simulator and the deliver worker agree on port and credentials.
sim = compose["mparticle-sim"]["command"]
sim_port = sim[sim.index("--port") + 1]
dm = workers["deliver-mparticle"]
check(xopts(dm["command"]).get("mparticle.url") == f"http://mparticle-sim:{sim_port}/v2"
      and '-X mparticle.url="$SIM/v2"' in libsh_code,
      f"compose deliver-mparticle: mparticle.url is the simulator's port {sim_port} and /v2 as in lib.sh")
env = dm.get("environment", {})
check(env.get("RELAY_MPARTICLE_API_KEY") == sim[sim.index("--key") + 1]
      and env.get("RELAY_MPARTICLE_API_SECRET") == sim[sim.index("--secret") + 1],
      "compose deliver-mparticle: key and secret are the simulator's")
libsh_env = set(re.findall(r"\b(RELAY_MPARTICLE_\w+)=", re.search(
    r"start_deliver\(\) \{(.*?)\n\}", libsh_code, re.S).group(1)))
check(set(env) == libsh_env, f"compose deliver-mparticle: env {sorted(env)} as lib.sh's start_deliver "
      f"({sorted(libsh_env)})")
c_keys = {env_of(k) for k in re.findall(r'"([a-z_]+\.[a-z_.]+)"', c_sources)}
for e in sorted(env):
    check(e in c_keys, f"{e} stands for a config key of the C code")
    check(e in read(cfg_of(dm["command"])), f"{e} is named in {cfg_of(dm['command'])}")

# Prometheus scrapes every compose worker on its admin port.
prom = yaml.safe_load(read("deploy/prometheus/prometheus.yml"))
relay_job = next(j for j in prom["scrape_configs"] if j["job_name"] == "relay")
targets = {t for sc in relay_job["static_configs"] for t in sc["targets"]}
check(targets == {f"{n}:{ADMIN_PORT}" for n in workers},
      f"prometheus.yml scrapes every worker: {sorted(targets)}")
check(all(sc.get("labels", {}).get("worker") == sc["targets"][0].split(":")[0]
          for sc in relay_job["static_configs"]), "prometheus.yml labels each target with its worker")
mounts = " ".join(compose["prometheus"]["volumes"])
check("./deploy/prometheus:/etc/prometheus" in mounts
      and "/etc/prometheus/prometheus.yml" in " ".join(compose["prometheus"]["command"]),
      "compose prometheus mounts deploy/prometheus (config and rules)")

# Grafana: the dashboard's datasource is the provisioned one, the provider
# reads where compose mounts the dashboards.
ds = yaml.safe_load(read("deploy/grafana/provisioning/datasources/prometheus.yml"))["datasources"]
provider = yaml.safe_load(read("deploy/grafana/provisioning/dashboards/relay.yml"))["providers"][0]
dash = read("deploy/grafana/dashboards/relay.json")
uids = set(re.findall(r'"uid":\s*"([^"]+)"', dash)) - {"relay"}
check(uids <= {d["uid"] for d in ds}, f"dashboard datasource uids {sorted(uids)} are provisioned")
check(any(d["url"] == "http://prometheus:9090" for d in ds) and "prometheus" in compose,
      "grafana's datasource is compose's prometheus")
gmounts = compose["grafana"]["volumes"]
check(f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in gmounts
      and "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in gmounts,
      "compose grafana mounts the provisioning and the dashboards where the provider reads")

# Every alert has a unit test in which it fires.
alerts = {r["alert"] for g in yaml.safe_load(read("deploy/prometheus/alerts.yml"))["groups"]
          for r in g["rules"] if "alert" in r}
tested = {t["alertname"] for tc in yaml.safe_load(read("deploy/prometheus/alerts_test.yml"))["tests"]
          for t in tc["alert_rule_test"] if t.get("exp_alerts")}
check(alerts <= tested, "every alert fires in alerts_test.yml"
      + ("" if alerts <= tested else f": untested {sorted(alerts - tested)}"))

# Dockerfile: the admin port of the health check and EXPOSE.
dockerfile = read("deploy/Dockerfile")
users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
check(users and users[-1] not in ("root", "0"), f"Dockerfile runs as a user, not root ({users[-1:]})")
check(f"EXPOSE {ADMIN_PORT}" in dockerfile and f"127.0.0.1:{ADMIN_PORT}/healthz" in dockerfile,
      f"Dockerfile exposes {ADMIN_PORT} and checks /healthz there")

# ---------------------------------------------------------------- Kubernetes
check(configmap_text() == read("deploy/k8s/configmap.yaml")
      and all(configmap["data"].get(os.path.basename(r)) == read("deploy/config/" + r)
              for r in CONFIG_FILES) and len(configmap["data"]) == len(CONFIG_FILES),
      "deploy/k8s/configmap.yaml holds deploy/config (else: check_in_step.py --write-configmap)")
by_cmd = {(s["command"][0], cfg_of(s["command"])): n for n, s in workers.items()}
k8s_cmds = {}
for name, d in deployments.items():
    pod = d["spec"]["template"]
    c = pod["spec"]["containers"][0]
    cmd = c["command"]
    k8s_cmds[(cmd[0], cfg_of(cmd))] = name
    x = xopts(cmd)
    io = worker_io(cmd[0], cfg_of(cmd))
    ann = pod["metadata"].get("annotations", {})
    check(x.get("admin.port") == str(ADMIN_PORT) and ann.get("prometheus.io/port") == str(ADMIN_PORT)
          and ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics"
          and any(p["containerPort"] == ADMIN_PORT for p in c["ports"]),
          f"k8s {name}: admin port {ADMIN_PORT} served, exposed and annotated for scraping")
    check(c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz"
          and c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz",
          f"k8s {name}: liveness /healthz, readiness /readyz")
    grace_ms = int(x.get("worker.shutdown_grace_ms", 30000))
    check(pod["spec"].get("terminationGracePeriodSeconds", 30) * 1000 > grace_ms,
          f"k8s {name}: terminationGracePeriodSeconds exceeds worker.shutdown_grace_ms={grace_ms}")
    for v in pod["spec"]["volumes"]:
        for item in v.get("configMap", {}).get("items", []):
            check(item["key"] in configmap["data"]
                  and os.path.isfile(os.path.join(SRC, "deploy/config", item["path"])),
                  f"k8s {name}: mounts {item['path']} from the ConfigMap as in deploy/config")
    mounted = {i["path"] for v in pod["spec"]["volumes"] for i in v.get("configMap", {}).get("items", [])}
    needed = {os.path.relpath(cfg_of(cmd), "deploy/config")}
    if cmd[0] == "relay-transform":
        cdir = os.path.relpath(cfg_value(read(cfg_of(cmd)), "connections"), "deploy/config")
        needed |= {r for r in CONFIG_FILES if r.startswith(cdir + "/")}
    check(needed <= mounted, f"k8s {name}: mounts its cfg and connections {sorted(needed)}")
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})}
    plain = [e["name"] for e in c.get("env", []) if "value" in e and "SECRET" in e["name"]]
    check(not plain, f"k8s {name}: no secret value inline")
    if cmd[0] == "relay-deliver":
        check(set(refs) == set(env), f"k8s {name}: env {sorted(refs)} from a Secret, as compose's")
        example = docs("deploy/k8s/examples/secret-mparticle.yaml")[0]
        check(all(r["name"] == example["metadata"]["name"] and r["key"] in example["stringData"]
                  for r in refs.values()), f"k8s {name}: secretKeyRefs match examples/secret-mparticle.yaml")
    so = scaled.get(name)
    check(so is not None, f"keda: a ScaledObject scales {name}")
    if so:
        md = so["spec"]["triggers"][0]["metadata"]
        check(md.get("bootstrapServers") == x.get("kafka.bootstrap.servers"),
              f"keda {name}: bootstrapServers is the Deployment's ({x.get('kafka.bootstrap.servers')})")
        check(md.get("consumerGroup") == io["group"] and md.get("topic") == io["topic"],
              f"keda {name}: group {io['group']} on {io['topic']}")
        check(so["spec"]["maxReplicaCount"] == test_topics[io["topic"]],
              f"keda {name}: maxReplicaCount = {test_topics[io['topic']]} partitions of {io['topic']}")
        check(md.get("offsetResetPolicy") == io["reset"],
              f"keda {name}: offsetResetPolicy {io['reset']} as the cfg's auto_offset_reset")
check(k8s_cmds.keys() == by_cmd.keys(), "k8s runs the same workers and configs as compose")
check(set(scaled) <= set(deployments), "keda scales only Deployments of deploy/k8s")

print(f"check_in_step: {failed} failed")
sys.exit(1 if failed else 0)
