// cel_check.js: evaluate the CRDs' x-kubernetes-validations (CEL) against good and bad
// resources, since the test API server does not run CEL.
//   node tests/k8s/cel_check.js [CRD_DIR [CASES_FILE [EXAMPLES_DIR]]]
// Defaults: crds/, tests/k8s/cel_cases.yaml, crds/examples/. Every rule must parse; every
// example must pass as a create and as an unchanged update; every case must fail with the
// messages it expects (or pass when it expects none). Needs NODE_PATH=tests/.deps/node_modules.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { pathToFileURL } = require("node:url");
const yaml = require("js-yaml");

const crdDir = process.argv[2] || "crds";
const casesFile = process.argv[3] || "tests/k8s/cel_cases.yaml";
const examplesDir = process.argv[4] || path.join(crdDir, "examples");

function loadYaml(file) {
  return yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean);
}

// kind -> openAPIV3Schema of the storage version
function loadCrds(dir) {
  const out = {};
  for (const f of fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const d of loadYaml(path.join(dir, f))) {
      if (d.kind !== "CustomResourceDefinition") continue;
      const v = d.spec.versions.find((x) => x.storage) || d.spec.versions[0];
      out[d.spec.names.kind] = v.schema.openAPIV3Schema;
    }
  }
  return out;
}

// Server-side defaulting, as the apiserver does it before validation.
function applyDefaults(v, schema) {
  if (!schema || typeof v !== "object" || v === null) return;
  if (Array.isArray(v)) {
    if (schema.items) for (const x of v) applyDefaults(x, schema.items);
    return;
  }
  const props = schema.properties || {};
  for (const [k, sub] of Object.entries(props))
    if (!(k in v) && sub && "default" in sub) v[k] = structuredClone(sub.default);
  for (const [k, x] of Object.entries(v)) {
    if (props[k]) applyDefaults(x, props[k]);
    else if (schema.additionalProperties && typeof schema.additionalProperties === "object")
      applyDefaults(x, schema.additionalProperties);
  }
}

// CEL sees integer-typed fields as int (BigInt here), not double.
function toCel(v, schema) {
  if (v === null || v === undefined || !schema) return v;
  if (schema.type === "integer" && typeof v === "number" && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map((x) => toCel(x, schema.items));
  if (typeof v === "object") {
    const out = {};
    for (const [k, x] of Object.entries(v)) {
      const sub = (schema.properties || {})[k] ||
        (typeof schema.additionalProperties === "object" ? schema.additionalProperties : null);
      out[k] = toCel(x, sub);
    }
    return out;
  }
  return v;
}

function oldItem(schema, oldList, item) {
  if (!Array.isArray(oldList) || schema["x-kubernetes-list-type"] !== "map") return undefined;
  const keys = schema["x-kubernetes-list-map-keys"] || [];
  return oldList.find((o) => keys.every((k) => o?.[k] === item?.[k]));
}

// Walk the schema and the object together; run each rule where the value exists (and,
// for transition rules that use oldSelf, where the old value exists too).
function runRules(cel, schema, v, old, p, errors) {
  if (!schema || v === undefined) return;
  for (const r of schema["x-kubernetes-validations"] || []) {
    const transition = /\boldSelf\b/.test(r.rule);
    if (transition && old === undefined) continue;
    let ok;
    try {
      ok = cel.evaluate(r.rule, { self: toCel(v, schema), oldSelf: toCel(old, schema) });
    } catch (e) {
      errors.push(`${p}: rule ${JSON.stringify(r.rule)} could not be evaluated: ${e.message}`);
      continue;
    }
    if (ok !== true) errors.push(`${p}: ${r.message || `failed rule: ${r.rule}`}`);
  }
  if (Array.isArray(v)) {
    v.forEach((x, i) => runRules(cel, schema.items, x, oldItem(schema, old, x), `${p}[${i}]`, errors));
    return;
  }
  if (typeof v !== "object" || v === null) return;
  for (const [k, x] of Object.entries(v)) {
    const sub = (schema.properties || {})[k] ||
      (typeof schema.additionalProperties === "object" ? schema.additionalProperties : null);
    runRules(cel, sub, x, old && typeof old === "object" ? old[k] : undefined, p ? `${p}.${k}` : k, errors);
  }
}

function allRules(schema, p, out) {
  if (!schema || typeof schema !== "object") return out;
  for (const r of schema["x-kubernetes-validations"] || []) out.push([p || "<root>", r]);
  for (const [k, s] of Object.entries(schema.properties || {})) allRules(s, p ? `${p}.${k}` : k, out);
  if (schema.items) allRules(schema.items, `${p}[]`, out);
  if (typeof schema.additionalProperties === "object") allRules(schema.additionalProperties, `${p}{}`, out);
  return out;
}

function check(cel, schemas, obj, old) {
  const schema = schemas[obj.kind];
  if (!schema) return [`no CRD for kind ${obj.kind}`];
  const o = structuredClone(obj);
  applyDefaults(o, schema);
  let prev;
  if (old) {
    prev = structuredClone(old);
    applyDefaults(prev, schema);
  }
  const errors = [];
  const body = (x) => x && Object.fromEntries(Object.entries(x).filter(([k]) => k !== "metadata"));
  runRules(cel, schema, body(o), body(prev), "", errors);
  return errors;
}

async function main() {
  // ESM ignores NODE_PATH; resolve through require, which honours it.
  const cel = await import(pathToFileURL(require.resolve("@marcbachmann/cel-js")).href);
  const schemas = loadCrds(crdDir);
  const problems = [];
  let n = 0;
  for (const [kind, schema] of Object.entries(schemas)) {
    for (const [p, r] of allRules(schema, "", [])) {
      n++;
      try {
        cel.parse(r.rule);
      } catch (e) {
        problems.push(`${kind} ${p}: rule does not parse: ${r.rule}: ${e.message}`);
      }
      if (!r.message) problems.push(`${kind} ${p}: rule ${r.rule} has no message`);
    }
  }
  console.log(`${n} rules parse`);
  for (const f of fs.readdirSync(examplesDir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const d of loadYaml(path.join(examplesDir, f))) {
      for (const e of check(cel, schemas, d)) problems.push(`example ${f} ${d.metadata.name} (create): ${e}`);
      for (const e of check(cel, schemas, d, d)) problems.push(`example ${f} ${d.metadata.name} (update): ${e}`);
      n++;
    }
  }
  const cases = yaml.load(fs.readFileSync(casesFile, "utf8"));
  for (const c of cases) {
    const errors = check(cel, schemas, c.object, c.old);
    const want = c.expect || [];
    if (!want.length && errors.length) problems.push(`case "${c.name}": expected to pass, got ${errors.join("; ")}`);
    for (const w of want)
      if (!errors.some((e) => e.includes(w)))
        problems.push(`case "${c.name}": expected an error containing "${w}", got ${errors.length ? errors.join("; ") : "none"}`);
    n++;
  }
  for (const p of problems) console.log(`FAIL ${p}`);
  console.log(`${n} rules, examples and cases checked, ${problems.length} problems`);
  process.exit(problems.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
