#!/usr/bin/env python3
"""Checks the deployment files (docker-compose.yml, deploy/) against the repo.

Static checks (default):
  - docker-compose.yml: the services are there, images are pinned, every
    host path it mounts or builds from exists, CXPULSE__* variables name real
    config keys (config/default.toml), the generator's flags exist, Kafka
    runs in KRaft mode, Prometheus/Alertmanager/Grafana mount deploy/;
  - deploy/prometheus: scrape targets match the compose services, every
    alert has severity, summary, description and a runbook anchor that
    exists in deploy/RUNBOOK.md, every alert has a firing and a not-firing
    promtool test, every recording rule is tested, every metric name used
    exists (docs/metrics.md, or a recording rule);
  - deploy/alertmanager: the receivers the routes name exist;
  - deploy/k8s: every manifest parses, is namespace-less, the probes are
    /healthz and /readyz, the ConfigMap's TOML uses real config keys;
  - deploy/grafana: dashboards parse, use only the provisioned datasource
    uid, and every query's metric names exist.

Live check (--live URL): asks a running Prometheus, through /api/v1/query,
for every Grafana panel query (template variables substituted), every
variable query and every recording rule, and fails on any empty answer (or
one with only NaN/Inf values);
also fails on rules whose evaluation reports an error.

Python 3 standard library + PyYAML (apt-get install python3-yaml, or
pip install pyyaml).
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("check_deploy.py needs PyYAML: apt-get install python3-yaml (or pip install pyyaml)")

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
DATASOURCE_TYPE = "prometheus"

REQUIRED_SERVICES = ["kafka", "topic-init", "cxpulse", "generator", "prometheus", "alertmanager", "grafana"]
# Config sections whose keys are free-form (librdkafka properties).
OPEN_SECTIONS = {("kafka", "properties"), ("kafka", "consumer_properties"), ("kafka", "producer_properties")}
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2", "start", "end",
}
# Values for Grafana's built-in variables in live queries.
BUILTIN_VARS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600"}


class Report:
    def __init__(self):
        self.errors = []
        self.checks = 0

    def check(self, ok, msg):
        self.checks += 1
        if not ok:
            self.errors.append(msg)
        return ok


def rel(path):
    return os.path.relpath(path, ROOT)


def load_yaml_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


# ---------------------------------------------------------------------------
# Configuration keys (config/default.toml)
# ---------------------------------------------------------------------------
def parse_toml(text):
    if tomllib is not None:
        return tomllib.loads(text)
    # Minimal fallback: sections and keys only (values are not needed).
    out, cur = {}, None
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^\[([A-Za-z0-9_.]+)\]$", line)
        if m:
            cur = out
            for part in m.group(1).split("."):
                cur = cur.setdefault(part, {})
            continue
        m = re.match(r"^([A-Za-z0-9_]+)\s*=", line)
        if m and cur is not None:
            cur.setdefault(m.group(1), "")
        elif m:
            out.setdefault(m.group(1), "")
    return out


def config_defaults():
    with open(os.path.join(ROOT, "config", "default.toml")) as f:
        return parse_toml(f.read())


def config_key_ok(defaults, path):
    """Is `path` (list of lower-case parts) a key of the configuration?"""
    node = defaults
    for i, part in enumerate(path):
        if tuple(path[:i]) in OPEN_SECTIONS:
            return True
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return not isinstance(node, dict) or tuple(path) in OPEN_SECTIONS


def env_key_path(name):
    """CXPULSE__KAFKA__BROKERS -> ["kafka", "brokers"]; None if not ours."""
    if not name.startswith("CXPULSE__"):
        return None
    return [p.lower() for p in name[len("CXPULSE__"):].split("__")]


def toml_keys(data, prefix=()):
    for k, v in data.items():
        if isinstance(v, dict) and prefix + (k,) not in OPEN_SECTIONS:
            yield from toml_keys(v, prefix + (k,))
        else:
            yield list(prefix + (k,))


# ---------------------------------------------------------------------------
# Metric names
# ---------------------------------------------------------------------------
def known_metrics():
    """Every metric name cxpulse exports, from docs/metrics.md and the KPI
    catalogue of docs/contract.md."""
    names = {"up"}
    with open(os.path.join(ROOT, "docs", "metrics.md")) as f:
        metrics_md = f.read()
    for m in re.finditer(r"`(cxpulse_[a-z0-9_]+)(?=[`{])", metrics_md):
        names.add(m.group(1))
    # Histograms: | `name` | histogram | ...
    for m in re.finditer(r"^\|\s*`(cxpulse_[a-z0-9_]+)`\s*\|\s*histogram\s*\|", metrics_md, re.M):
        for suffix in ("_bucket", "_sum", "_count"):
            names.add(m.group(1) + suffix)
        names.discard(m.group(1))  # a histogram has no series of its own name
    with open(os.path.join(ROOT, "docs", "contract.md")) as f:
        contract = f.read()
    kinds = dict(re.findall(
        r"^\|\s*`([a-z_]+)`\s*\|\s*(count|distribution|ratio|mean|score|sum)\s*\|", contract, re.M))
    for kpi, kind in kinds.items():
        base = f"cxpulse_kpi_{kpi}"
        names.update({base, base + "_count"})
        if kind == "distribution":
            names.update({base + "_mean", base + "_sum"})
        if kind == "mean":
            names.add(base + "_sum")
        if kind in ("ratio", "score"):
            names.add(base + "_numerator")
    # Drop the placeholder family names of the docs.
    names.discard("cxpulse_kpi_")
    return names, kinds


_STRIP = [
    (re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''), '""'),
    (re.compile(r"\{[^{}]*\}"), ""),
    (re.compile(r"\[[^\[\]]*\]"), ""),
    (re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)"), " "),
]
_TOKEN = re.compile(r"(?P<num>\d[\w.]*)|(?P<id>[A-Za-z_:][\w:]*)(?P<call>\s*\()?")


def metric_names(expr):
    """Metric names referenced by a PromQL expression (best effort)."""
    s = expr
    for rx, rep in _STRIP:
        s = rx.sub(rep, s)
    out = set()
    for m in _TOKEN.finditer(s):
        name = m.group("id")
        if not name or m.group("call"):
            continue
        if name.lower() in PROMQL_KEYWORDS:
            continue
        out.add(name)
    return out


# ---------------------------------------------------------------------------
# Grafana
# ---------------------------------------------------------------------------
def dashboards():
    out = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "grafana", "dashboards", "*.json"))):
        with open(path) as f:
            out.append((path, json.load(f)))
    return out


def all_panels(d):
    for p in d.get("panels", []):
        yield p
        for q in p.get("panels", []) or []:
            yield q


def label_values_query(q):
    """label_values(metric{...}, label) -> (selector, label)."""
    m = re.match(r"^\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", q, re.S)
    return (m.group(1), m.group(2)) if m else None


def substitute(expr, values):
    def var(name):
        if name in BUILTIN_VARS:
            return BUILTIN_VARS[name]
        return values.get(name, ".*")
    expr = re.sub(r"\$\{(\w+)(?::[\w]+)?\}", lambda m: var(m.group(1)), expr)
    expr = re.sub(r"\[\[(\w+)\]\]", lambda m: var(m.group(1)), expr)
    return re.sub(r"\$(\w+)", lambda m: var(m.group(1)), expr)


def dashboard_queries(values):
    """[(where, promql)] of every panel target and query variable."""
    out = []
    for path, d in dashboards():
        name = os.path.basename(path)
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            lv = label_values_query(q or "")
            if lv:
                out.append((f"{name}: variable ${v['name']}", f"group by ({lv[1]}) ({substitute(lv[0], values)})"))
            else:
                out.append((f"{name}: variable ${v['name']}", substitute(q, values)))
        for p in all_panels(d):
            for t in p.get("targets", []) or []:
                if t.get("expr"):
                    out.append((f"{name}: panel {p.get('title')!r} {t.get('refId')}", substitute(t["expr"], values)))
    return out


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------
def rule_files():
    return sorted(glob.glob(os.path.join(DEPLOY, "prometheus", "rules", "*.yml")))


def rules():
    out = []
    for path in rule_files():
        for g in load_yaml(path).get("groups", []):
            for r in g.get("rules", []):
                out.append((path, g["name"], r))
    return out


def recorded_names():
    return {r["record"] for _, _, r in rules() if "record" in r}


def github_anchor(heading):
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


# ---------------------------------------------------------------------------
# Static checks
# ---------------------------------------------------------------------------
def check_compose(rep, defaults, binary):
    path = os.path.join(ROOT, "docker-compose.yml")
    if not rep.check(os.path.exists(path), "docker-compose.yml is missing"):
        return {}
    c = load_yaml(path)
    services = c.get("services", {}) or {}
    for s in REQUIRED_SERVICES:
        rep.check(s in services, f"docker-compose.yml: service {s!r} is missing")
    built = {svc.get("image") for svc in services.values() if svc.get("build") and svc.get("image")}
    named_volumes = set((c.get("volumes") or {}).keys())
    for name, svc in services.items():
        image = svc.get("image")
        if svc.get("build"):
            b = svc["build"]
            ctx = b if isinstance(b, str) else b.get("context", ".")
            ctx_path = os.path.normpath(os.path.join(ROOT, ctx))
            rep.check(os.path.isdir(ctx_path), f"docker-compose.yml: {name}: build context {ctx} does not exist")
            if isinstance(b, dict) and b.get("dockerfile"):
                rep.check(os.path.isfile(os.path.join(ctx_path, b["dockerfile"])),
                          f"docker-compose.yml: {name}: dockerfile {b['dockerfile']} does not exist")
        elif rep.check(bool(image), f"docker-compose.yml: {name}: no image and no build"):
            if image in built:
                pass  # built by another service of this file
            else:
                tag = image.split("@")[0].rsplit("/", 1)[-1]
                pinned = "@sha256:" in image or (":" in tag and not tag.endswith(":latest"))
                rep.check(pinned, f"docker-compose.yml: {name}: image {image!r} is not pinned to a version")
        for v in svc.get("volumes", []) or []:
            if isinstance(v, dict):
                src, typ = v.get("source", ""), v.get("type", "volume")
            else:
                src = v.split(":", 1)[0]
                typ = "bind" if src.startswith((".", "/", "~")) else "volume"
            if typ == "bind":
                host = os.path.normpath(os.path.join(ROOT, src))
                rep.check(os.path.exists(host), f"docker-compose.yml: {name}: mounted path {src} does not exist")
                rep.check(host.startswith(ROOT), f"docker-compose.yml: {name}: mounted path {src} is outside the repo")
            else:
                rep.check(src in named_volumes, f"docker-compose.yml: {name}: volume {src!r} is not declared")
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
        for k in env:
            p = env_key_path(k)
            if p is not None:
                rep.check(config_key_ok(defaults, p),
                          f"docker-compose.yml: {name}: {k} is not a configuration key (config/default.toml)")
    cx = services.get("cxpulse", {})
    env = cx.get("environment") or {}
    rep.check(str(env.get("CXPULSE__KAFKA__BROKERS", "")) == "kafka:9092",
              "docker-compose.yml: cxpulse must use CXPULSE__KAFKA__BROKERS=kafka:9092")
    rep.check(any(str(p).split(":")[-1] == "9898" for p in cx.get("ports", []) or []),
              "docker-compose.yml: cxpulse must publish port 9898")
    k = services.get("kafka", {})
    rep.check(str(k.get("image", "")).startswith("apache/kafka:"), "docker-compose.yml: kafka must use apache/kafka")
    kenv = k.get("environment") or {}
    rep.check("KAFKA_PROCESS_ROLES" in kenv and "CLUSTER_ID" in kenv,
              "docker-compose.yml: kafka must run in KRaft mode (KAFKA_PROCESS_ROLES, CLUSTER_ID)")
    rep.check("kafka:9092" in str(kenv.get("KAFKA_ADVERTISED_LISTENERS", "")),
              "docker-compose.yml: kafka must advertise kafka:9092 inside the compose network")
    # The same files the tests use.
    mounts = {name: " ".join(str(v) for v in (svc.get("volumes") or [])) for name, svc in services.items()}
    rep.check("./deploy/prometheus:" in mounts.get("prometheus", ""),
              "docker-compose.yml: prometheus must mount ./deploy/prometheus")
    rep.check("./deploy/alertmanager:" in mounts.get("alertmanager", ""),
              "docker-compose.yml: alertmanager must mount ./deploy/alertmanager")
    rep.check("./deploy/grafana/provisioning:" in mounts.get("grafana", "")
              and "./deploy/grafana/dashboards:" in mounts.get("grafana", ""),
              "docker-compose.yml: grafana must mount deploy/grafana/provisioning and deploy/grafana/dashboards")
    # Generator flags exist.
    gen = services.get("generator", {})
    cmd = gen.get("command") or []
    cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
    rep.check("generate" in cmd and "--brokers kafka:9092" in cmd,
              "docker-compose.yml: generator must run `cxpulse generate --brokers kafka:9092`")
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", cmd.split("generate", 1)[-1]))
    if binary and os.access(binary, os.X_OK):
        help_text = subprocess.run([binary, "generate", "--help"], capture_output=True, text=True).stdout
        for fl in sorted(flags):
            rep.check(re.search(rf"(?<![\w-]){re.escape(fl)}\b", help_text) is not None,
                      f"docker-compose.yml: generator flag {fl} is not in `cxpulse generate --help`")
    else:
        with open(os.path.join(ROOT, "src", "main.rs")) as f:
            main_rs = f.read()
        fields = set(re.findall(r"^\s*(?:pub\s+)?([a-z_]+):\s", main_rs, re.M))
        for fl in sorted(flags):
            rep.check(fl[2:].replace("-", "_") in fields,
                      f"docker-compose.yml: generator flag {fl} is not a field of src/main.rs")
    return services


def check_prometheus(rep, services, metrics):
    prom_path = os.path.join(DEPLOY, "prometheus", "prometheus.yml")
    cfg = load_yaml(prom_path)
    jobs = {j["job_name"]: j for j in cfg.get("scrape_configs", [])}
    rep.check("cxpulse" in jobs, "prometheus.yml: no job 'cxpulse'")
    targets = [t for sc in jobs.get("cxpulse", {}).get("static_configs", []) for t in sc.get("targets", [])]
    rep.check("cxpulse:9898" in targets, "prometheus.yml: job cxpulse must scrape cxpulse:9898")
    for t in targets:
        rep.check(t.split(":")[0] in services, f"prometheus.yml: target {t} is not a compose service")
    am = [t for a in cfg.get("alerting", {}).get("alertmanagers", [])
          for sc in a.get("static_configs", []) for t in sc.get("targets", [])]
    rep.check("alertmanager:9093" in am, "prometheus.yml: alertmanager must be alertmanager:9093")
    rf = cfg.get("rule_files", [])
    rep.check("rules/*.yml" in rf, "prometheus.yml: rule_files must include rules/*.yml")
    rep.check(len(rule_files()) > 0, "deploy/prometheus/rules: no rule files")

    with open(os.path.join(DEPLOY, "RUNBOOK.md")) as f:
        runbook = f.read()
    anchors = {github_anchor(h) for h in re.findall(r"^#{1,6}\s+(.+)$", runbook, re.M)}

    # What the promtool tests cover.
    firing, quiet, tested_exprs = set(), set(), []
    test_files = sorted(glob.glob(os.path.join(DEPLOY, "prometheus", "tests", "*.yml")))
    rep.check(bool(test_files), "deploy/prometheus/tests: no promtool tests")
    for path in test_files:
        t = load_yaml(path)
        for f in t.get("rule_files", []):
            rep.check(os.path.exists(os.path.normpath(os.path.join(os.path.dirname(path), f))),
                      f"{rel(path)}: rule file {f} does not exist")
        for case in t.get("tests", []):
            for a in case.get("alert_rule_test", []) or []:
                (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
            for e in case.get("promql_expr_test", []) or []:
                tested_exprs.append(e["expr"])
    tested_names = set()
    for e in tested_exprs:
        tested_names |= metric_names(e)

    known = metrics | recorded_names()
    for path, group, r in rules():
        where = f"{rel(path)}: {r.get('alert') or r.get('record')}"
        for name in metric_names(r["expr"]):
            rep.check(name in known, f"{where}: metric {name!r} is not in docs/metrics.md or a recording rule")
        if "alert" in r:
            a = r["alert"]
            labels, ann = r.get("labels", {}) or {}, r.get("annotations", {}) or {}
            rep.check(labels.get("severity") in ("critical", "warning", "info"),
                      f"{where}: labels.severity must be critical, warning or info")
            for key in ("summary", "description", "runbook_url"):
                rep.check(bool(ann.get(key)), f"{where}: annotations.{key} is missing")
            url = ann.get("runbook_url", "")
            rep.check("RUNBOOK.md#" in url and url.split("#", 1)[1] in anchors,
                      f"{where}: runbook_url {url!r} does not point to a heading of deploy/RUNBOOK.md")
            rep.check(a in firing, f"{where}: no promtool test where the alert fires")
            rep.check(a in quiet, f"{where}: no promtool test where the alert does not fire")
        else:
            rep.check(r["record"] in tested_names, f"{where}: no promtool promql_expr_test for the recording rule")


def check_alertmanager(rep):
    cfg = load_yaml(os.path.join(DEPLOY, "alertmanager", "alertmanager.yml"))
    names = {r["name"] for r in cfg.get("receivers", [])}

    def walk(route, where):
        if "receiver" in route:
            rep.check(route["receiver"] in names, f"alertmanager.yml: {where} uses unknown receiver {route['receiver']!r}")
        for i, sub in enumerate(route.get("routes", []) or []):
            walk(sub, f"{where}.routes[{i}]")

    rep.check("receiver" in cfg.get("route", {}), "alertmanager.yml: the top route needs a receiver")
    walk(cfg.get("route", {}), "route")


def check_k8s(rep, defaults):
    files = sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml")) + glob.glob(os.path.join(DEPLOY, "k8s", "*.yml")))
    rep.check(bool(files), "deploy/k8s: no manifests")
    kinds = {}
    for path in files:
        try:
            docs = load_yaml_all(path)
        except yaml.YAMLError as e:
            rep.check(False, f"{rel(path)}: does not parse: {e}")
            continue
        for d in docs:
            kind = d.get("kind")
            rep.check(bool(d.get("apiVersion")) and bool(kind), f"{rel(path)}: apiVersion and kind are required")
            if kind == "Kustomization":
                for r in d.get("resources", []):
                    rep.check(os.path.exists(os.path.join(os.path.dirname(path), r)),
                              f"{rel(path)}: resource {r} does not exist")
                continue
            rep.check(bool(d.get("metadata", {}).get("name")), f"{rel(path)}: metadata.name is required")
            rep.check("namespace" not in d.get("metadata", {}), f"{rel(path)}: must be namespace-less")
            kinds.setdefault(kind, []).append(d)
    for kind in ("Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler"):
        rep.check(kind in kinds, f"deploy/k8s: no {kind}")
    rep.check("ServiceMonitor" in kinds or "PodMonitor" in kinds, "deploy/k8s: no ServiceMonitor or PodMonitor")
    for dep in kinds.get("Deployment", []):
        for c in dep["spec"]["template"]["spec"]["containers"]:
            live = c.get("livenessProbe", {}).get("httpGet", {}).get("path")
            ready = c.get("readinessProbe", {}).get("httpGet", {}).get("path")
            rep.check(live == "/healthz", "deploy/k8s: the liveness probe must be GET /healthz")
            rep.check(ready == "/readyz", "deploy/k8s: the readiness probe must be GET /readyz")
            for e in c.get("env", []) or []:
                p = env_key_path(e.get("name", ""))
                if p is not None:
                    rep.check(config_key_ok(defaults, p), f"deploy/k8s: env {e['name']} is not a configuration key")
    for cm in kinds.get("ConfigMap", []):
        for key, text in (cm.get("data") or {}).items():
            if key.endswith(".toml"):
                try:
                    data = parse_toml(text)
                except Exception as e:  # noqa: BLE001
                    rep.check(False, f"deploy/k8s: ConfigMap {key} does not parse: {e}")
                    continue
                for p in toml_keys(data):
                    rep.check(config_key_ok(defaults, p),
                              f"deploy/k8s: ConfigMap {key}: {'.'.join(p)} is not a configuration key")


def check_grafana(rep, metrics):
    uids = set()
    for path in glob.glob(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "*.yml")):
        for ds in load_yaml(path).get("datasources", []):
            if ds.get("uid"):
                uids.add(ds["uid"])
    rep.check(bool(uids), "grafana provisioning: no datasource with a uid")
    prov = load_yaml(os.path.join(DEPLOY, "grafana", "provisioning", "dashboards", "cxpulse.yml"))
    paths = [p.get("options", {}).get("path") for p in prov.get("providers", [])]
    compose = load_yaml(os.path.join(ROOT, "docker-compose.yml"))
    gvols = [str(v) for v in compose["services"]["grafana"].get("volumes", [])]
    for p in paths:
        rep.check(any(v.startswith("./deploy/grafana/dashboards:" + p) for v in gvols),
                  f"grafana provisioning: dashboards path {p} is not where compose mounts deploy/grafana/dashboards")
    known = metrics | recorded_names()
    boards = dashboards()
    rep.check(len(boards) >= 3, "deploy/grafana/dashboards: expected the CX overview, Agents and Pipeline dashboards")
    seen_uids = set()
    for path, d in boards:
        name = os.path.basename(path)
        rep.check(d.get("uid") not in seen_uids, f"{name}: duplicate dashboard uid")
        seen_uids.add(d.get("uid"))

        def ds_ok(ds, where):
            if ds is None:
                return
            if isinstance(ds, str):
                rep.check(False, f"{name}: {where}: datasource must be a {{type, uid}} reference")
                return
            if ds.get("type") == DATASOURCE_TYPE:
                rep.check(ds.get("uid") in uids, f"{name}: {where}: datasource uid {ds.get('uid')!r} is not provisioned")

        ids = set()
        for v in d.get("templating", {}).get("list", []):
            ds_ok(v.get("datasource"), f"variable {v.get('name')}")
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            if v.get("type") == "query":
                lv = label_values_query(q or "")
                expr = lv[0] if lv else q
                for m in metric_names(expr or ""):
                    rep.check(m in known, f"{name}: variable {v.get('name')}: unknown metric {m!r}")
        for p in all_panels(d):
            rep.check(p.get("id") not in ids, f"{name}: duplicate panel id {p.get('id')}")
            ids.add(p.get("id"))
            if p.get("type") == "row":
                continue
            ds_ok(p.get("datasource"), f"panel {p.get('title')!r}")
            rep.check(bool(p.get("targets")), f"{name}: panel {p.get('title')!r} has no query")
            for t in p.get("targets", []) or []:
                ds_ok(t.get("datasource"), f"panel {p.get('title')!r} target {t.get('refId')}")
                expr = substitute(t.get("expr", ""), {})
                rep.check(bool(expr.strip()), f"{name}: panel {p.get('title')!r} has an empty query")
                for m in metric_names(expr):
                    rep.check(m in known, f"{name}: panel {p.get('title')!r}: unknown metric {m!r}")


def static(binary):
    rep = Report()
    defaults = config_defaults()
    metrics, kinds = known_metrics()
    rep.check(len(kinds) == 22, f"docs/contract.md: expected 22 KPIs, found {len(kinds)}")
    services = check_compose(rep, defaults, binary)
    check_prometheus(rep, services, metrics)
    check_alertmanager(rep)
    check_k8s(rep, defaults)
    check_grafana(rep, metrics)
    for f in ("Dockerfile", "README.md", "RUNBOOK.md"):
        rep.check(os.path.exists(os.path.join(DEPLOY, f)), f"deploy/{f} is missing")
    rep.check(os.path.exists(os.path.join(ROOT, ".dockerignore")), ".dockerignore is missing")
    if os.path.exists(os.path.join(DEPLOY, "Dockerfile")):
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            df = f.read()
        rep.check("EXPOSE 9898" in df, "deploy/Dockerfile: EXPOSE 9898 is missing")
        rep.check(re.search(r"^USER\s+(?!root|0\b)", df, re.M) is not None, "deploy/Dockerfile: must run as non-root")
        rep.check('"/etc/cxpulse/cxpulse.toml"' in df, "deploy/Dockerfile: default --config /etc/cxpulse/cxpulse.toml")
    for e in rep.errors:
        print("FAIL:", e)
    print(f"check_deploy: {rep.checks} checks, {len(rep.errors)} failed")
    return 1 if rep.errors else 0


# ---------------------------------------------------------------------------
# Live check
# ---------------------------------------------------------------------------
def prom_get(base, path, params=None):
    url = base.rstrip("/") + path
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=20) as r:
        return json.load(r)


def live(base, timeout, values):
    queries = dashboard_queries(values)
    for rec in sorted(recorded_names()):
        queries.append((f"recording rule {rec}", rec))
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        failed, errors = [], []
        for where, q in queries:
            try:
                res = prom_get(base, "/api/v1/query", {"query": q})
                if res.get("status") != "success":
                    errors.append((where, q, res.get("error")))
                elif not res["data"]["result"]:
                    failed.append((where, q))
                elif all(r["value"][1] in ("NaN", "+Inf", "-Inf") for r in res["data"]["result"]):
                    failed.append((where + " (only NaN/Inf values)", q))
            except urllib.error.HTTPError as e:
                body = e.read().decode(errors="replace")
                errors.append((where, q, f"HTTP {e.code}: {body}"))
            except (urllib.error.URLError, OSError) as e:
                errors.append((where, q, str(e)))
        rule_errors = []
        pending_rules = 0
        try:
            for g in prom_get(base, "/api/v1/rules")["data"]["groups"]:
                for r in g["rules"]:
                    if r.get("health") == "err":
                        rule_errors.append((r["name"], r.get("lastError")))
                    elif r.get("health") != "ok":
                        pending_rules += 1
        except (urllib.error.URLError, OSError, KeyError) as e:
            rule_errors.append(("/api/v1/rules", str(e)))
        ok = not failed and not errors and not rule_errors and pending_rules == 0
        print(f"live: attempt {attempt}: {len(queries) - len(failed) - len(errors)}/{len(queries)} queries "
              f"non-empty, {len(errors)} errors, {len(rule_errors)} rule errors, {pending_rules} rules not evaluated yet",
              flush=True)
        if ok or time.monotonic() > deadline:
            break
        time.sleep(5)
    for where, q, err in errors:
        print(f"ERROR: {where}: {err}\n    {q}")
    for where, q in failed:
        print(f"EMPTY: {where}\n    {' '.join(q.split())}")
    for name, err in rule_errors:
        print(f"RULE ERROR: {name}: {err}")
    total = len(queries)
    bad = len(failed) + len(errors)
    print(f"live: {total} queries checked, {bad} failed (empty {len(failed)}, errors {len(errors)}); "
          f"{len(rule_errors)} rule evaluation errors")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "cxpulse"),
                    help="cxpulse binary for `generate --help` (default: target/release/cxpulse if built)")
    ap.add_argument("--live", metavar="URL", help="Prometheus base URL: run the live query check instead")
    ap.add_argument("--timeout", type=float, default=150, help="live: seconds to wait for every query (default 150)")
    ap.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                    help="live: template variable value (default: window=1h, others .*)")
    a = ap.parse_args()
    if a.live:
        values = {"window": "1h"}
        for kv in a.var:
            k, _, v = kv.partition("=")
            values[k] = v
        return live(a.live, a.timeout, values)
    return static(a.binary)


if __name__ == "__main__":
    sys.exit(main())
