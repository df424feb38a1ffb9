// validate_manifests.js: check rendered Kubernetes manifests (multi-document YAML).
//   node tests/k8s/validate_manifests.js FILE... (or - for stdin)
// Each document is validated against the Kubernetes OpenAPI schema with kubernetes-models
// (unknown fields are errors), then against Sluice's own rules: non-root, read-only root
// filesystem, resources and probes set, Services and bindings that point at something
// that exists, least-privilege RBAC. Exits 1 with one line per problem.
// Needs NODE_PATH=tests/.deps/node_modules (check_manifests.sh sets it).
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { pathToFileURL } = require("node:url");

const yaml = require("js-yaml");
const modelsDir = path.dirname(require.resolve("kubernetes-models/package.json"));

const problems = [];
const fail = (doc, msg) =>
  problems.push(`${doc ? `${doc.kind}/${doc.metadata?.name}` : "-"}: ${msg}`);

// Objects whose kinds kubernetes-models lacks are checked by hand (CRD-backed kinds).
const shapeChecks = {
  "monitoring.coreos.com/v1/ServiceMonitor": (d) => {
    if (!d.spec?.selector?.matchLabels) fail(d, "spec.selector.matchLabels is required");
    if (!Array.isArray(d.spec?.endpoints) || !d.spec.endpoints.length)
      fail(d, "spec.endpoints must be a non-empty list");
    for (const e of d.spec?.endpoints || [])
      if (!e.port) fail(d, "every endpoint needs a named port");
  },
};

// The compiled validator of a kind: kubernetes-models/<group>/<version>/<Kind>.js imports it
// from _schemas/; calling it directly (not through the Model class, which deep-copies)
// lets the unknown-field tracker below see what it reads.
async function validatorFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const dir = group ? path.join(modelsDir, group, version) : path.join(modelsDir, version);
  const file = path.join(dir, `${kind}.js`);
  if (!fs.existsSync(file)) return null;
  const m = /from\s*"(\.\.\/[^"]*_schemas\/[^"]+\.js)"/.exec(fs.readFileSync(file, "utf8"));
  if (!m) return null;
  const mod = await import(pathToFileURL(path.resolve(dir, m[1])).href);
  return mod.validate;
}

function tracked(value, p, seen) {
  if (value === null || typeof value !== "object") return value;
  const rec = { keys: new Set(), all: false, value };
  seen.set(p, rec);
  return new Proxy(value, {
    get(target, key, recv) {
      if (typeof key === "string") rec.keys.add(key);
      const v = Reflect.get(target, key, recv);
      return typeof key === "string" && Object.prototype.hasOwnProperty.call(target, key)
        ? tracked(v, `${p}/${key}`, seen)
        : v;
    },
    ownKeys(target) {
      rec.all = true;
      return Reflect.ownKeys(target);
    },
  });
}

function unknownFields(seen) {
  const out = [];
  for (const [p, rec] of seen) {
    if (rec.all || Array.isArray(rec.value) || p === "") continue;
    for (const k of Object.keys(rec.value)) if (!rec.keys.has(k)) out.push(`${p}/${k}`);
  }
  return out;
}

function podSpecOf(d) {
  if (["Deployment", "StatefulSet", "DaemonSet", "Job"].includes(d.kind))
    return d.spec?.template?.spec;
  if (d.kind === "Pod") return d.spec;
  return null;
}

function checkWorkload(d, all) {
  const ps = podSpecOf(d);
  if (!ps) return;
  const sel = d.spec?.selector?.matchLabels || {};
  const podLabels = d.spec?.template?.metadata?.labels || {};
  for (const [k, v] of Object.entries(sel))
    if (podLabels[k] !== v) fail(d, `selector ${k}=${v} does not match the pod template labels`);
  const psc = ps.securityContext || {};
  if (psc.runAsNonRoot !== true) fail(d, "pod securityContext.runAsNonRoot must be true");
  if (!(psc.runAsUser > 0)) fail(d, "pod securityContext.runAsUser must be a non-root uid");
  const sa = ps.serviceAccountName;
  if (sa && !all.some((o) => o.kind === "ServiceAccount" && o.metadata?.name === sa))
    fail(d, `serviceAccountName ${sa} is not rendered`);
  const volumes = new Set((ps.volumes || []).map((v) => v.name));
  for (const t of d.spec?.volumeClaimTemplates || []) volumes.add(t.metadata?.name);
  for (const c of ps.containers || []) {
    const sc = c.securityContext || {};
    if (sc.readOnlyRootFilesystem !== true) fail(d, `${c.name}: readOnlyRootFilesystem must be true`);
    if (sc.allowPrivilegeEscalation !== false)
      fail(d, `${c.name}: allowPrivilegeEscalation must be false`);
    if (!(sc.capabilities?.drop || []).includes("ALL")) fail(d, `${c.name}: must drop ALL capabilities`);
    if (!c.resources?.requests) fail(d, `${c.name}: resources.requests must be set`);
    if (!c.livenessProbe || !c.readinessProbe) fail(d, `${c.name}: liveness and readiness probes are required`);
    if (/:latest$/.test(c.image) || !c.image.includes(":")) fail(d, `${c.name}: image needs a pinned tag`);
    const ports = new Set((c.ports || []).map((p) => p.name));
    for (const pr of [c.livenessProbe, c.readinessProbe, c.startupProbe])
      if (pr?.httpGet && typeof pr.httpGet.port === "string" && !ports.has(pr.httpGet.port))
        fail(d, `${c.name}: probe port ${pr.httpGet.port} is not a container port`);
    const names = new Set();
    for (const e of c.env || []) {
      if (names.has(e.name)) fail(d, `${c.name}: env ${e.name} is set twice`);
      names.add(e.name);
    }
    for (const m of c.volumeMounts || [])
      if (!volumes.has(m.name)) fail(d, `${c.name}: volumeMount ${m.name} has no volume`);
    if (!(c.volumeMounts || []).some((m) => m.mountPath === "/tmp"))
      fail(d, `${c.name}: needs a writable /tmp (the root filesystem is read-only)`);
  }
}

function checkService(d, all) {
  const sel = d.spec?.selector;
  if (!sel) return;
  const match = all.some((o) => {
    const labels = o.spec?.template?.metadata?.labels;
    return labels && Object.entries(sel).every(([k, v]) => labels[k] === v);
  });
  if (!match) fail(d, "selector matches no rendered workload");
  for (const p of d.spec?.ports || []) {
    if (typeof p.targetPort !== "string") continue;
    const ok = all.some((o) =>
      (podSpecOf(o)?.containers || []).some((c) => (c.ports || []).some((cp) => cp.name === p.targetPort)),
    );
    if (!ok) fail(d, `targetPort ${p.targetPort} is not a named container port`);
  }
}

function checkRbac(d, all) {
  if (d.kind === "Role" || d.kind === "ClusterRole") {
    for (const r of d.rules || []) {
      for (const field of ["apiGroups", "resources", "verbs"])
        if ((r[field] || []).includes("*")) fail(d, `wildcard in ${field} is not least privilege`);
      if ((r.resources || []).includes("secrets") && (r.verbs || []).some((v) => ["list", "watch", "delete"].includes(v)))
        fail(d, "secrets: only get/create/update/patch are needed");
    }
  }
  if (d.kind === "RoleBinding" || d.kind === "ClusterRoleBinding") {
    const ref = d.roleRef || {};
    if (!all.some((o) => o.kind === ref.kind && o.metadata?.name === ref.name))
      fail(d, `roleRef ${ref.kind}/${ref.name} is not rendered`);
    for (const s of d.subjects || [])
      if (s.kind === "ServiceAccount" && !all.some((o) => o.kind === "ServiceAccount" && o.metadata?.name === s.name))
        fail(d, `subject ServiceAccount ${s.name} is not rendered`);
  }
}

async function main() {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error("usage: validate_manifests.js FILE... (- for stdin)");
    process.exit(2);
  }
  const docs = [];
  for (const f of files) {
    const text = fs.readFileSync(f === "-" ? 0 : f, "utf8");
    for (const d of yaml.loadAll(text)) if (d) docs.push(d);
  }
  if (!docs.length) fail(null, "no documents");
  const seen = new Set();
  for (const d of docs) {
    if (!d.apiVersion || !d.kind || !d.metadata?.name) {
      fail(d, "apiVersion, kind and metadata.name are required");
      continue;
    }
    const id = `${d.apiVersion}/${d.kind}/${d.metadata.namespace || ""}/${d.metadata.name}`;
    if (seen.has(id)) fail(d, "rendered twice");
    seen.add(id);
    const validate = await validatorFor(d.apiVersion, d.kind);
    const custom = shapeChecks[`${d.apiVersion}/${d.kind}`];
    if (validate) {
      const seen = new Map();
      if (!validate(tracked(d, "", seen)))
        for (const e of validate.errors || [])
          fail(d, `schema: ${e.instancePath || "/"} ${e.keyword} ${JSON.stringify(e.params)}`);
      // JSONSchemaProps (CRDs) is recursive and its validator skips nested fields, so
      // the tracker would flag valid ones; the test API server checks CRDs instead.
      if (d.kind !== "CustomResourceDefinition")
        for (const f of unknownFields(seen)) fail(d, `unknown field ${f}`);
    } else if (custom) {
      custom(d);
    } else {
      fail(d, `no schema for ${d.apiVersion} ${d.kind}`);
    }
    checkWorkload(d, docs);
    if (d.kind === "Service") checkService(d, docs);
    checkRbac(d, docs);
  }
  for (const p of problems) console.log(`FAIL ${p}`);
  console.log(`${docs.length} documents, ${problems.length} problems`);
  process.exit(problems.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
