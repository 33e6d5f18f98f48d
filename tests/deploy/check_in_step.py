#!/usr/bin/env python3
"""Keeps deploy/ in step with the configs, the tests and the code.

The compose file, the Kubernetes and KEDA manifests, the Prometheus and
Grafana files must name the same topics, partitions, consumer groups,
ports, config files and environment variables as deploy/config/*.cfg,
tests/integration/lib.sh (what the tests run) and the C sources (the
default group names, the config keys the variables stand for). Every
platform with a deploy/config/deliver-P.cfg has a simulator P-sim and a
worker deliver-P in compose, a Deployment, Secret example and ScaledObject
(written by tests/deploy/gen_deliver.py, checked current here) and a scrape
target; each is checked against what the platform's scenario
(tests/integration/*.sh, lib.sh for mParticle) runs. Run from anywhere;
prints one "ok - ..." / "not ok - ..." line per check and exits 1 if any
failed.

  check_in_step.py                  check
  check_in_step.py --write-configmap  rewrite deploy/k8s/configmap.yaml from deploy/config
"""
import glob
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_deliver  # noqa: E402  (the generator of the deliver workers' k8s/keda files)

SRC = os.environ.get("RELAY_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
ADMIN_PORT = 9400
failed = 0

# The simulator's flag that must hold the value a deliver worker in compose
# has for a config key (its RELAY_ variable for a secret, else its -X or
# cfg value): every secret key of a compose platform must be listed, so a
# new secret fails here until its simulator side is named.
SIM_FLAGS = {
    "mparticle.api_key": "--key", "mparticle.api_secret": "--secret",
    "braze.api_key": "--key",
    "webhook.secret": "--secret",
    "antavo.api_key": "--api-key", "antavo.api_secret": "--api-secret",
    "cmcdp.product_token": "--token", "cmcdp.tenant_id": "--tenant",
    "mappengage.password": "--password", "mappengage.username": "--user",
    "mappengage.host": "--domain", "mappengage.default_group_id": "--default-group",
    "eagleeye.client_secret": "--secret", "eagleeye.client_id": "--client-id",
    "digitalaudience.api_token": "--token", "digitalaudience.client_id": "--client",
}


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


def cfg_any(text, key):
    """A value of a libconfig file, quoted or not, by its dotted key's leaf."""
    m = re.search(r'^\s*%s\s*=\s*(?:"([^"]*)"|([^;\s]+))' % re.escape(key.split(".")[-1]), text, re.M)
    return (m.group(1) if m.group(1) is not None else m.group(2)) if m else None


def flag_values(cmd, flag):
    """Every value of FLAG on a command line (argparse's append options repeat)."""
    return [cmd[i + 1] for i, a in enumerate(cmd[:-1]) if a == flag]


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
test_topics = gen_deliver.topic_list(m.group(1))
compose_topics = gen_deliver.compose_partitions()
nparts = int(compose["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"])
DELIVER_CFGS = gen_deliver.deliver_cfgs()  # platform -> deploy/config/deliver-P.cfg


def runner(cfg):
    """(file, command line, file text) of the test that runs relay-deliver -c cfg:
    lib.sh, else a scenario; continuation lines joined. None if no test does."""
    for path in ["tests/integration/lib.sh"] + sorted(
            os.path.relpath(p, SRC) for p in glob.glob(os.path.join(SRC, "tests/integration/0*.sh"))):
        text = "\n".join(l for l in read(path).replace("\\\n", " ").splitlines()
                         if not l.lstrip().startswith("#"))
        for line in text.splitlines():
            if re.search(r'"\$BIN/relay-deliver" -c %s(\s|$)' % re.escape(cfg), line):
                return path, line, text
    return None


# Compose creates the tests' default topics (lib.sh broker()) and, for each
# platform, out.P and dlq.P with the partitions its scenario creates them
# with (out.P: KAFKA_NUM_PARTITIONS, dlq.P: 1 if no scenario runs it yet).
# lib.sh's default stays the pipeline's four: a scenario of one platform
# names its own two topics (broker out.P:3 dlq.P:1).
expected_topics = dict(test_topics)
for platform, cfg in DELIVER_CFGS.items():
    run = runner(cfg)
    m = run and re.search(r"^\s*broker( [^\n]*)?$", run[2], re.M)
    made = (test_topics if not (m and m.group(1)) else gen_deliver.topic_list(m.group(1))) if run else {}
    for t, n in ((f"out.{platform}", nparts), (f"dlq.{platform}", 1)):
        expected_topics[t] = made.get(t, n)
check(compose_topics == expected_topics,
      f"compose creates the tests' topics and every platform's out/dlq {sorted(expected_topics.items())}"
      + ("" if compose_topics == expected_topics else f", not {sorted(compose_topics.items())}"))


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
want = {"transform"} | {f"deliver-{p}" for p in DELIVER_CFGS}
check(set(workers) == want, f"compose runs every worker ({', '.join(sorted(workers))})"
      + ("" if set(workers) == want else f", not {sorted(want)}"))
for name, svc in workers.items():
    cmd = svc["command"]
    x = xopts(cmd)
    binary, cfg = cmd[0], cfg_of(cmd)
    check(os.path.isfile(os.path.join(SRC, cfg)), f"compose {name}: {cfg} exists")
    if binary == "relay-transform":
        check(re.search(r'"\$BIN/%s" -c %s\b' % (binary, re.escape(cfg)), libsh_code) is not None,
              f"compose {name}: {binary} -c {cfg} as tests/integration/lib.sh runs it")
    elif runner(cfg):
        check(True, f"compose {name}: {binary} -c {cfg} as {runner(cfg)[0]} runs it")
    else:
        # No scenario runs this cfg yet: only the command's shape.
        check(cmd[:3] == [binary, "-c", cfg] and len(cmd) % 2 == 1
              and all(a == "-X" for a in cmd[3::2]),
              f"compose {name}: {binary} -c {cfg} -X ... (no test runs {cfg} yet: shape only)")
    io = worker_io(binary, cfg)
    for t in [io["topic"], io["dlq"]] + io["outs"]:
        check(t in compose_topics, f"compose {name}: topic {t} is created by compose")
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
    check(io["topic"] in compose_topics and compose_topics[io["topic"]] == nparts,
          f"compose {name}: {io['topic']} has KAFKA_NUM_PARTITIONS={nparts} partitions")

# Every deliver worker and its simulator agree on URL, port and
# credentials, as the platform's scenario runs them.
c_keys = {env_of(k) for k in re.findall(r'"([a-z_]+\.[a-z_.]+)"', c_sources)}
secret_env = {}  # compose worker -> {RELAY_ name: config key}
for platform, cfg in DELIVER_CFGS.items():
    name, simname = f"deliver-{platform}", f"{platform}-sim"
    svc = workers.get(name)
    if svc is None or cfg_of(svc["command"]) != cfg:
        check(False, f"compose {name} runs relay-deliver -c {cfg}")
        continue
    x, cfg_text, run = xopts(svc["command"]), read(cfg), runner(cfg)
    keys = gen_deliver.secret_keys(platform)
    secret_env[name] = {env_of(k): k for k in keys}
    check(keys != [], f"compose {name}: the adapter flags secret keys {keys}")
    sim_svc = compose.get(simname, {})
    sim = [str(a) for a in sim_svc.get("command", [])]
    simfile = f"tests/sim/{platform}_sim.py"
    check(sim[:2] == ["python3", f"/sim/{platform}_sim.py"] and os.path.isfile(os.path.join(SRC, simfile))
          and "./tests/sim:/sim:ro" in sim_svc.get("volumes", []),
          f"compose {simname} runs {simfile}")
    argparse_src = read(simfile) if os.path.isfile(os.path.join(SRC, simfile)) else ""
    opts = set(re.findall(r'add_argument\(\s*"(--[a-z0-9-]+)"', argparse_src))
    required = set(re.findall(r'add_argument\(\s*"(--[a-z0-9-]+)"[^)]*required=True', argparse_src))
    used = {a for a in sim if a.startswith("--")}
    check(used <= opts and required <= used,
          f"compose {simname}: flags {sorted(used)} are {simfile}'s, its required {sorted(required)} given"
          + ("" if used <= opts else f" (unknown {sorted(used - opts)})"))
    port = (flag_values(sim, "--port") or [""])[0]
    check(flag_values(sim, "--host") == ["0.0.0.0"]
          and any(str(p).endswith(":" + port) for p in sim_svc.get("ports", [])),
          f"compose {simname}: listens on 0.0.0.0:{port}, published")
    deps = svc.get("depends_on", {})
    check(simname in deps, f"compose {name}: depends on {simname}")
    url = x.get(f"{platform}.url", "")
    m = run and re.search(r'-X %s\.url="\$SIM([^"]*)"' % re.escape(platform), run[1])
    if m:
        check(url == f"http://{simname}:{port}{m.group(1)}",
              f"compose {name}: {platform}.url {url} is {simname}'s port {port} and "
              f"'{m.group(1)}' as {run[0]}")
    else:
        check(re.fullmatch(r"http://%s:%s(/\S*)?" % (re.escape(simname), port), url) is not None,
              f"compose {name}: {platform}.url {url} is {simname}'s port {port}"
              f"{'' if run else ' (no test runs ' + cfg + ' yet)'}")
    env = svc.get("environment", {}) or {}
    check(set(env) == set(secret_env[name]),
          f"compose {name}: env {sorted(env)} = the RELAY_ names of {platform}'s secret keys")
    if run:
        used_env = {re.sub(r"_FILE$", "", e) for e in re.findall(r"\b(RELAY_[A-Z0-9_]+)=", run[1])
                    if e.startswith(f"RELAY_{platform.upper()}_")}
        check(used_env == set(secret_env[name]),
              f"compose {name}: env as {run[0]} gives it ({sorted(used_env)})")
    for e in sorted(env):
        check(e in c_keys, f"{e} stands for a config key of the C code")
        check(e in cfg_text, f"{e} is named in {cfg}")
    # The simulator holds what the worker sends.
    for key, flag in sorted(SIM_FLAGS.items()):
        if not key.startswith(platform + "."):
            continue
        value = env.get(env_of(key)) if key in keys else x.get(key, cfg_any(cfg_text, key))
        check(flag in opts and value is not None and str(value) in flag_values(sim, flag),
              f"compose {name}: {key} is {simname}'s {flag}")
    for k in keys:
        check(k in SIM_FLAGS, f"compose {name}: the simulator's flag for {k} is known (SIM_FLAGS)")

hostports = [str(p).rsplit(":", 1)[0] for s in compose.values() for p in s.get("ports", [])]
check(len(hostports) == len(set(hostports)), "compose publishes each host port once")

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
        platform = cfg_value(read(cfg_of(cmd)), "platform")
        want_env = secret_env.get(by_cmd.get((cmd[0], cfg_of(cmd))), {})
        check(refs and set(refs) == set(want_env),
              f"k8s {name}: env {sorted(refs)} from a Secret, as compose's {sorted(want_env)}")
        path = f"deploy/k8s/examples/secret-{platform}.yaml"
        example = docs(path)[0] if os.path.isfile(os.path.join(SRC, path)) else {}
        data = example.get("stringData", {})
        check(example.get("kind") == "Secret"
              and example.get("metadata", {}).get("name") == f"relay-{platform}"
              and all(r["name"] == f"relay-{platform}" and r["key"] in data for r in refs.values())
              and set(data) == {r["key"] for r in refs.values()},
              f"k8s {name}: secretKeyRefs {sorted(r['key'] for r in refs.values())} "
              f"match {path} ({sorted(data)})")
    so = scaled.get(name)
    check(so is not None, f"keda: a ScaledObject scales {name}")
    if so:
        md = so["spec"]["triggers"][0]["metadata"]
        check(md.get("bootstrapServers") == x.get("kafka.bootstrap.servers"),
              f"keda {name}: bootstrapServers is the Deployment's ({x.get('kafka.bootstrap.servers')})")
        check(md.get("consumerGroup") == io["group"] and md.get("topic") == io["topic"],
              f"keda {name}: group {io['group']} on {io['topic']}")
        parts = expected_topics.get(io["topic"])
        check(so["spec"]["maxReplicaCount"] == parts,
              f"keda {name}: maxReplicaCount = {parts} partitions of {io['topic']}")
        check(md.get("offsetResetPolicy") == io["reset"],
              f"keda {name}: offsetResetPolicy {io['reset']} as the cfg's auto_offset_reset")
check(k8s_cmds.keys() == by_cmd.keys(), "k8s runs the same workers and configs as compose"
      + ("" if k8s_cmds.keys() == by_cmd.keys()
         else f": only k8s {sorted(set(k8s_cmds) - set(by_cmd))}, only compose {sorted(set(by_cmd) - set(k8s_cmds))}"))
stale = gen_deliver.stale()
check(not stale, "the deliver workers' k8s, Secret example and keda files are current"
      + ("" if not stale else f" (else: gen_deliver.py --write): {stale}"))
check(set(scaled) <= set(deployments), "keda scales only Deployments of deploy/k8s")

print(f"check_in_step: {failed} failed")
sys.exit(1 if failed else 0)
