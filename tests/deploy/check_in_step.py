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
(tests/integration/*.sh, lib.sh for mParticle) runs. relay-ingest and
relay-poll (deploy/config/ingest.cfg, poll.cfg) are held to the same
checks where they apply (compose service, topics, registry, admin port,
health check, scrape target, Deployment, probes, grace, ConfigMap items,
secrets from a Secret as the example shows) and to their own: ingest's
source files, tokens, HTTP port, Service and CPU autoscaler; poll's source
files, tokens as files, its simulator and replicas within the checkpoint
topic's partitions. Every metric the C code registers is listed in
tests/deploy/metrics.txt with its type. Run from anywhere; prints one
"ok - ..." / "not ok - ..." line per check and exits 1 if any failed.

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
                    for p in sorted(glob.glob(os.path.join(SRC, "common/**/*.c"), recursive=True))
                    + sorted(glob.glob(os.path.join(SRC, "workers/**/*.c"), recursive=True)))
k8s = [d for p in sorted(glob.glob(os.path.join(SRC, "deploy/k8s/*.yaml")))
       for d in docs(os.path.relpath(p, SRC))]
keda = [d for p in sorted(glob.glob(os.path.join(SRC, "deploy/keda/*.yaml")))
        for d in docs(os.path.relpath(p, SRC))]
deployments = {d["metadata"]["name"]: d for d in k8s if d["kind"] == "Deployment"}
services = {d["metadata"]["name"]: d for d in k8s if d["kind"] == "Service"}
hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in k8s if d["kind"] == "HorizontalPodAutoscaler"}
pdbs = [d for d in k8s if d["kind"] == "PodDisruptionBudget"]
configmap = next((d for d in k8s if d["kind"] == "ConfigMap"), {"data": {}})
scaled = {d["spec"]["scaleTargetRef"]["name"]: d for d in keda if d["kind"] == "ScaledObject"}

# Topics the tests create (lib.sh broker's default), TOPIC -> partitions.
m = re.search(r"\|\| topics=\(([^)]*)\)", libsh_code)
test_topics = gen_deliver.topic_list(m.group(1))
compose_topics = gen_deliver.compose_partitions()
nparts = int(compose["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"])
DELIVER_CFGS = gen_deliver.deliver_cfgs()  # platform -> deploy/config/deliver-P.cfg


def runners(cfg, binary="relay-deliver"):
    """(file, command line, file text) of each test that runs BINARY -c cfg:
    lib.sh, then the scenarios in order; continuation lines joined."""
    found = []
    for path in ["tests/integration/lib.sh"] + sorted(
            os.path.relpath(p, SRC) for p in glob.glob(os.path.join(SRC, "tests/integration/0*.sh"))):
        text = "\n".join(l for l in read(path).replace("\\\n", " ").splitlines()
                         if not l.lstrip().startswith("#"))
        for line in text.splitlines():
            if re.search(r'"\$BIN/%s" -c %s(\s|$)' % (re.escape(binary), re.escape(cfg)), line):
                found.append((path, line, text))
                break
    return found


def runner(cfg, binary="relay-deliver"):
    """The first of runners(), or None if no test runs it."""
    found = runners(cfg, binary)
    return found[0] if found else None


def scenario_topics(run):
    """TOPIC -> partitions the scenario's broker line creates (lib.sh's
    default when it names none); {} without a scenario."""
    if not run:
        return {}
    m = re.search(r"^\s*broker( [^\n]*)?$", run[2], re.M)
    return test_topics if not (m and m.group(1)) else gen_deliver.topic_list(m.group(1))


def c_default(key):
    """The default of a config key as the C code's property table declares it."""
    m = re.search(r'\{\s*"%s"\s*,\s*RELAY_CONF_\w+\s*,\s*(?:"([^"]*)"|NULL)' % re.escape(key), c_sources)
    return m.group(1) if m else None


def setting(cmd, key):
    """A key's value for a command line: its -X, else its cfg file, else the C default."""
    x = xopts(cmd)
    if key in x:
        return x[key]
    value = cfg_any(read(cfg_of(cmd)), key)
    return value if value is not None else c_default(key)


def group_str(text, group, key):
    """A string value inside `group = { ... }` of a libconfig text."""
    m = re.search(r'\b%s\s*=\s*\{[^}]*\b%s\s*=\s*"([^"]*)"' % (group, key), text)
    return m.group(1) if m else None


def source_files(path):
    """The *.cfg files (repository paths) of a sources directory, or the one file."""
    if path.endswith(".cfg"):
        return [path]
    return sorted(os.path.relpath(p, SRC) for p in glob.glob(os.path.join(SRC, path, "*.cfg")))


def poll_sources(cmd):
    """[{file, name, url, topic, env, auth_in, paging}] of relay-poll's command line."""
    out = []
    for f in source_files(setting(cmd, "poll.sources")):
        text = read(f)
        name = cfg_value(text, "name")
        env = group_str(text, "auth", "env") or ("RELAY_POLL_" + re.sub(
            r"[^A-Za-z0-9]", "_", name or "").upper() + "_TOKEN")
        out.append({"file": f, "name": name, "url": cfg_value(text, "url"), "env": env,
                    "topic": cfg_value(text, "topic") or c_default("source.topic"),
                    "auth_in": group_str(text, "auth", "in") or c_default("source.auth.in"),
                    "paging": group_str(text, "paging", "kind") or c_default("source.paging.kind")})
    return out


def ingest_sources(cmd):
    """[{file, name, topic, env}] of relay-ingest's command line."""
    return [{"file": f, "name": cfg_value(read(f), "name"), "topic": cfg_value(read(f), "topic"),
             "env": cfg_value(read(f), "tokens_env")}
            for f in source_files(setting(cmd, "ingest.sources"))]


def secret_vars(cmd):
    """{RELAY_ variable: what it is} of the secrets an ingest or poll command needs:
    the C code's RELAY_CONF_SECRET keys of the worker ("ingest.link_keys") and
    each source's token variable."""
    if cmd[0] == "relay-ingest":
        keys = [m.group(1) for m in gen_deliver.ROW.finditer(read("workers/ingest/main.c"))
                if m.group(1).startswith("ingest.")
                and "RELAY_CONF_SECRET" in re.sub(r'"(?:[^"\\]|\\.)*"', '""', m.group(3))]
        out = {env_of(k): k for k in keys}
        out.update({s["env"]: f"tokens of source {s['name']}" for s in ingest_sources(cmd)})
        return out
    if cmd[0] == "relay-poll":
        return {s["env"]: f"token of source {s['name']}" for s in poll_sources(cmd)}
    return {}


def secret_key_of(var, worker):
    """The Secret's key of a variable: RELAY_INGEST_IP_SALT -> ip-salt (relay-ingest),
    RELAY_POLL_ACME_ANTAVO_TOKEN -> acme-antavo-token (relay-poll)."""
    return re.sub(r"^RELAY_%s_" % worker.upper(), "", var).lower().replace("_", "-")


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


# What each worker consumes and writes, from its command line, its cfg file
# and the defaults in the C code.
def worker_io(cmd):
    binary, cfg = cmd[0], cfg_of(cmd)
    text = read(cfg)
    reset = cfg_value(text, "auto_offset_reset") or "latest"
    if binary == "relay-transform":
        topic = cfg_value(text, "topic")
        fmt = "relay-transform-%s"
        outs = [f"out.{d}" for d in re.findall(r'destination\s*=\s*"([^"]+)"',
                "".join(read(p) for p in
                        glob.glob(os.path.join(SRC, cfg_value(text, "connections"), "*.cfg"))))]
        dlq = cfg_value(text, "dlq_topic")
        group = cfg_value(text, "group_id") or fmt % topic
    elif binary == "relay-ingest":
        # Consumes nothing: it writes its sources' topics, clicks and syncs.
        topic = dlq = group = fmt = None
        outs = sorted({s["topic"] for s in ingest_sources(cmd)}
                      | {setting(cmd, "ingest.clicks_topic"), setting(cmd, "ingest.syncs_topic")})
    elif binary == "relay-poll":
        # Consumes its checkpoint topic (made by relay-poll, compacted).
        topic, dlq = setting(cmd, "poll.checkpoint_topic"), setting(cmd, "poll.dlq_topic")
        outs = sorted({s["topic"] for s in poll_sources(cmd)})
        group, fmt, reset = setting(cmd, "poll.group_id"), "relay-poll", None
    else:
        platform = cfg_value(text, "platform")
        topic, fmt = f"out.{platform}", "relay-deliver-%s"
        outs, dlq = [], cfg_value(text, "dlq_topic") or f"dlq.{platform}"
        group = cfg_value(text, "group_id") or fmt % platform
    if fmt:
        check(f'"{fmt}"' in c_sources, f"{binary}'s default group {fmt} is the C code's")
    return {"topic": topic, "outs": outs, "dlq": dlq, "group": group, "reset": reset}


# Compose also creates what ingest and poll write, with the partitions
# their scenarios create it with; not poll's checkpoint topic, which
# relay-poll makes compacted (a plain one made first would not be).
for svc in compose.values():
    cmd = [str(a) for a in svc.get("command", [""])]
    if cmd[0] in ("relay-ingest", "relay-poll"):
        # Every scenario that runs it (0007 runs both beside the pipeline,
        # 0019 and 0023 each alone): a topic as the one that creates it.
        made = {}
        for run in runners(cfg_of(cmd), cmd[0]):
            m = re.search(r"^\s*broker( [^\n]*)?$", run[2], re.M)
            if m and m.group(1):
                made.update(gen_deliver.topic_list(m.group(1)))
        io = worker_io(cmd)
        for t in io["outs"] + ([io["dlq"]] if io["dlq"] else []):
            expected_topics[t] = made.get(t, expected_topics.get(t, 1 if t == io["dlq"] else nparts))
        if cmd[0] == "relay-poll":
            check(io["topic"] not in compose_topics,
                  f"compose leaves {io['topic']} to relay-poll (it makes it compacted)")
check(compose_topics == expected_topics,
      f"compose creates the tests' topics, every platform's out/dlq and ingest's and poll's"
      f" {sorted(expected_topics.items())}"
      + ("" if compose_topics == expected_topics else f", not {sorted(compose_topics.items())}"))


# ---------------------------------------------------------------- compose
workers = {n: s for n, s in compose.items() if str(s.get("command", [""])[0]).startswith("relay-")}
# ingest and poll run wherever their cfg is shipped.
want = ({"transform"} | {f"deliver-{p}" for p in DELIVER_CFGS}
        | {w for w in ("ingest", "poll") if os.path.isfile(os.path.join(SRC, f"deploy/config/{w}.cfg"))})
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
    elif runner(cfg, binary):
        check(True, f"compose {name}: {binary} -c {cfg} as {runner(cfg, binary)[0]} runs it")
    else:
        # No scenario runs this cfg yet: only the command's shape.
        check(cmd[:3] == [binary, "-c", cfg] and len(cmd) % 2 == 1
              and all(a == "-X" for a in cmd[3::2]),
              f"compose {name}: {binary} -c {cfg} -X ... (no test runs {cfg} yet: shape only)")
    io = worker_io(cmd)
    for t in [io["dlq"]] + io["outs"] + ([io["topic"]] if binary != "relay-poll" else []):
        if t:
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
    if binary in ("relay-transform", "relay-deliver"):
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


# relay-ingest: its secrets as environment variables (demo values), as its
# scenario gives them; its HTTP port published.
for name, svc in workers.items():
    cmd = svc["command"]
    if cmd[0] != "relay-ingest":
        continue
    want_env = secret_vars(cmd)
    secret_env[name] = want_env
    env = svc.get("environment", {}) or {}
    check(set(env) == set(want_env),
          f"compose {name}: env {sorted(env)} = its secrets {sorted(want_env)} "
          "(the C code's secret keys, each source's tokens_env)")
    run = runner(cfg_of(cmd), cmd[0])
    if run:
        given = set(re.findall(r"\b(RELAY_INGEST_[A-Z0-9_]+)=", run[2]))
        check(given and given <= set(env), f"compose {name}: env holds what {run[0]} gives it ({sorted(given)})")
    for s in ingest_sources(cmd):
        check(s["env"] and s["env"].startswith("RELAY_"), f"compose {name}: {s['file']} names its tokens_env")
    port = setting(cmd, "ingest.port")
    check(any(str(p).endswith(f":{port}") for p in svc.get("ports", [])),
          f"compose {name}: ingest.port {port} is published")

# relay-poll: each source it reads is compose's poll-sim (tests/sim/poll_sim.py)
# with the token it is given, the same source names as deploy/config's (so
# the same token variables), the sources' directory mounted.
for name, svc in workers.items():
    cmd = svc["command"]
    if cmd[0] != "relay-poll":
        continue
    env = svc.get("environment", {}) or {}
    srcs = poll_sources(cmd)
    secret_env[name] = secret_vars(cmd)
    shipped = {s["name"] for s in poll_sources([cmd[0], "-c", cfg_of(cmd)])}
    check(srcs and {s["name"] for s in srcs} == shipped,
          f"compose {name}: sources {sorted(s['name'] for s in srcs)} are deploy/config's {sorted(shipped)}")
    check(set(env) == set(secret_env[name]),
          f"compose {name}: env {sorted(env)} = its sources' token variables {sorted(secret_env[name])}")
    sdir = setting(cmd, "poll.sources")
    if not sdir.startswith("deploy/config"):
        check(f"./{sdir}:/etc/relay/{sdir}:ro" in svc.get("volumes", []),
              f"compose {name}: mounts {sdir} (not in the image)")
    sim_svc = compose.get("poll-sim", {})
    sim = [str(a) for a in sim_svc.get("command", [])]
    simfile = "tests/sim/poll_sim.py"
    check(sim[:2] == ["python3", "/sim/poll_sim.py"] and "./tests/sim:/sim:ro" in sim_svc.get("volumes", []),
          f"compose poll-sim runs {simfile}")
    argparse_src = read(simfile)
    opts = set(re.findall(r'add_argument\(\s*"(--[a-z0-9-]+)"', argparse_src))
    required = set(re.findall(r'add_argument\(\s*"(--[a-z0-9-]+)"[^)]*required=True', argparse_src))
    used = {a for a in sim if a.startswith("--")}
    check(used <= opts and required <= used,
          f"compose poll-sim: flags {sorted(used)} are {simfile}'s, its required {sorted(required)} given")
    port = (flag_values(sim, "--port") or [""])[0]
    check(flag_values(sim, "--host") == ["0.0.0.0"]
          and any(str(p).endswith(":" + port) for p in sim_svc.get("ports", [])),
          f"compose poll-sim: listens on 0.0.0.0:{port}, published")
    check("poll-sim" in svc.get("depends_on", {}), f"compose {name}: depends on poll-sim")
    for s in srcs:
        check(re.fullmatch(r"http://poll-sim:%s/feeds/[^/]+/events" % port, s["url"] or "") is not None,
              f"compose {name}: source {s['name']} asks poll-sim's port {port} ({s['url']})")
        check(env.get(s["env"]) in flag_values(sim, "--token"),
              f"compose {name}: {s['env']} is poll-sim's --token")
        check((flag_values(sim, "--token-in") or ["query"]) == [s["auth_in"]]
              and (flag_values(sim, "--paging") or ["cursor"]) == [s["paging"]],
              f"compose {name}: source {s['name']} sends its token in the {s['auth_in']} and pages by "
              f"{s['paging']}, as poll-sim expects")

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
    io = worker_io(cmd)
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
            # The key is the file's (the ConfigMap is keyed by base name).
            check(item["key"] == os.path.basename(item["path"])
                  and os.path.isfile(os.path.join(SRC, "deploy/config", item["path"]))
                  and configmap["data"].get(item["key"]) == read("deploy/config/" + item["path"]),
                  f"k8s {name}: mounts {item['path']} from the ConfigMap as in deploy/config")
    mounted = {i["path"] for v in pod["spec"]["volumes"] for i in v.get("configMap", {}).get("items", [])}
    needed = {os.path.relpath(cfg_of(cmd), "deploy/config")}
    if cmd[0] == "relay-transform":
        cdir = os.path.relpath(cfg_value(read(cfg_of(cmd)), "connections"), "deploy/config")
        needed |= {r for r in CONFIG_FILES if r.startswith(cdir + "/")}
    elif cmd[0] in ("relay-ingest", "relay-poll"):
        srcs = ingest_sources(cmd) if cmd[0] == "relay-ingest" else poll_sources(cmd)
        needed |= {os.path.relpath(s["file"], "deploy/config") for s in srcs}
        check(srcs and all(s["file"].startswith("deploy/config/") for s in srcs),
              f"k8s {name}: its source files are deploy/config's ({len(srcs)})")
    check(needed <= mounted, f"k8s {name}: mounts its cfg, connections and sources {sorted(needed)}")
    env_list = c.get("env", [])
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env_list
            if "secretKeyRef" in e.get("valueFrom", {})}
    secret_names = set(secret_env.get(by_cmd.get((cmd[0], cfg_of(cmd))), {})) | set(secret_vars(cmd))
    plain = [e["name"] for e in env_list if "value" in e
             and ("SECRET" in e["name"] or e["name"] in secret_names)]
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
    worker = cmd[0][len("relay-"):]
    example_path = f"deploy/k8s/examples/secret-{worker}.yaml"
    if cmd[0] == "relay-ingest":
        # Every secret by secretKeyRef from the Secret relay-ingest: read
        # once at start, so the environment is as good as a file.
        want_env = secret_vars(cmd)
        example = docs(example_path)[0] if os.path.isfile(os.path.join(SRC, example_path)) else {}
        data = example.get("stringData", {})
        check(set(refs) == set(want_env),
              f"k8s {name}: env {sorted(refs)} from a Secret, its secrets {sorted(want_env)}")
        check(example.get("kind") == "Secret" and example.get("metadata", {}).get("name") == "relay-ingest"
              and all(r["name"] == "relay-ingest" and r["key"] == secret_key_of(v, worker)
                      for v, r in refs.items())
              and set(data) == {r["key"] for r in refs.values()},
              f"k8s {name}: secretKeyRefs {sorted(r['key'] for r in refs.values())} match {example_path}"
              f" ({sorted(data)})")
    if cmd[0] == "relay-poll":
        # Tokens as files (<VAR>_FILE) of the Secret relay-poll mounted as
        # a volume: relay-poll reads the file again after a 401/403, and
        # Kubernetes updates the files when the Secret changes.
        want_env = secret_vars(cmd)
        files = {e["name"][:-len("_FILE")]: e.get("value", "") for e in env_list
                 if e["name"].endswith("_FILE")}
        vols = {v["name"]: v["secret"] for v in pod["spec"]["volumes"] if "secret" in v}
        mounts = {m["mountPath"].rstrip("/"): m for m in c.get("volumeMounts", []) if m["name"] in vols}
        example = docs(example_path)[0] if os.path.isfile(os.path.join(SRC, example_path)) else {}
        data = example.get("stringData", {})
        check(set(files) == set(want_env) and not refs,
              f"k8s {name}: {sorted(v + '_FILE' for v in files)} name its sources' token files"
              f" ({sorted(want_env)})")
        for var, path in sorted(files.items()):
            folder, key = os.path.dirname(path), os.path.basename(path)
            m = mounts.get(folder)
            check(m is not None and m.get("readOnly") and "subPath" not in m
                  and vols[m["name"]].get("secretName") == "relay-poll"
                  and key == secret_key_of(var, worker) and key in data,
                  f"k8s {name}: {var}_FILE is key {key} of the Secret relay-poll, mounted whole"
                  f" (updated in place) as {example_path} shows")
        check(set(data) == {secret_key_of(v, worker) for v in want_env},
              f"k8s {name}: {example_path} holds one token a source ({sorted(data)})")
    so, hpa = scaled.get(name), hpas.get(name)
    if cmd[0] in ("relay-transform", "relay-deliver"):
        check(so is not None, f"keda: a ScaledObject scales {name}")
    check(not (so and hpa), f"k8s {name}: one autoscaler at most")
    if so or hpa:
        check("replicas" not in d["spec"], f"k8s {name}: no replicas field (the autoscaler owns the count)")
    if cmd[0] == "relay-ingest":
        # Scaled on CPU from 2 replicas; the Service is its HTTP port; the
        # grace covers its shutdown (main.c: the preStop pause, then up to
        # ack_timeout_ms + 1 s for the acks of what it produced, 1 s for the
        # resumed answers, 0.2 s, and the producer's 5 s flush).
        check(hpa is not None and hpa["spec"]["scaleTargetRef"].get("kind") == "Deployment"
              and hpa["spec"].get("minReplicas", 1) >= 2
              and any(mt["type"] == "Resource" and mt["resource"]["name"] == "cpu"
                      for mt in hpa["spec"].get("metrics", [])),
              f"k8s {name}: a HorizontalPodAutoscaler on CPU, minReplicas >= 2")
        check(c.get("resources", {}).get("requests", {}).get("cpu") is not None,
              f"k8s {name}: a CPU request (the autoscaler's utilization is a share of it)")
        port = int(setting(cmd, "ingest.port"))
        http = [p for p in c["ports"] if p["containerPort"] == port]
        labels = pod["metadata"]["labels"]
        svc = services.get(name, {}).get("spec", {})
        check(http and svc.get("selector") == labels
              and any(sp.get("targetPort") in (http[0].get("name"), port) for sp in svc.get("ports", [])),
              f"k8s {name}: the Service {name} selects its pods and targets ingest.port {port}")
        pre = c.get("lifecycle", {}).get("preStop", {})
        pause = pre.get("sleep", {}).get("seconds") or next(
            (int(a) for a in pre.get("exec", {}).get("command", [])[1:] if str(a).isdigit()), 0)
        need = pause * 1000 + int(setting(cmd, "ingest.ack_timeout_ms")) + 2200 + 5000
        check(pod["spec"].get("terminationGracePeriodSeconds", 30) * 1000 > need,
              f"k8s {name}: terminationGracePeriodSeconds above its shutdown ({need} ms,"
              f" a {pause} s preStop pause)")
    if cmd[0] == "relay-poll":
        parts = int(setting(cmd, "poll.checkpoint_partitions"))
        check(not (so or hpa) and 1 <= d["spec"].get("replicas", 1) <= parts,
              f"k8s {name}: {d['spec'].get('replicas', 1)} replicas, within the {parts} partitions"
              f" of {io['topic']} (no autoscaler)")
    labels = pod["metadata"]["labels"]
    check(any(b["spec"]["selector"].get("matchLabels") == labels for b in pdbs),
          f"k8s {name}: a PodDisruptionBudget selects its pods")
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
check(set(hpas) <= set(deployments), "HorizontalPodAutoscalers scale only Deployments of deploy/k8s")

# Every metric the C code registers (relay_metric(RELAY_METRIC_<TYPE>,
# "name", ...)) is in tests/deploy/metrics.txt with its type, so the
# dashboard and alert checks know it.
listed = dict(l.split()[:2] for l in read("tests/deploy/metrics.txt").splitlines()
              if l.strip() and not l.startswith("#"))
registered = {n: ty.lower() for ty, n in
              re.findall(r'RELAY_METRIC_([A-Z]+)\s*,\s*"(relay_[a-z0-9_]+)"', c_sources)}
wrong = sorted(n for n, ty in registered.items() if listed.get(n) != ty)
check(not wrong, f"tests/deploy/metrics.txt lists the {len(registered)} metrics the C code registers"
      " as RELAY_METRIC_<TYPE>" + ("" if not wrong else f": missing or mistyped {wrong}"))

print(f"check_in_step: {failed} failed")
sys.exit(1 if failed else 0)
