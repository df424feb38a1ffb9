"""k8s_model.py: the pure parts of the test API server (apiserver.py): Status errors,
label and field selectors, merge/strategic/JSON patches, structural-schema defaulting,
pruning and validation, JSONPath and Tables for kubectl, and protobuf request bodies.
Standard library only.
"""

import base64
import copy
import datetime
import json
import re
import time


# ---------------------------------------------------------------------------------------
# errors and small helpers


class ApiError(Exception):
    """An error answered as a metav1.Status."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details
        self.headers = headers or {}

    def status(self):
        s = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            s["details"] = self.details
        return s


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s):
    try:
        return datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def human_duration(seconds):
    """kubectl's duration.HumanDuration: 5s, 3m20s, 15m, 2h5m, 3d4h, 1y20d."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm" % m if s % 60 == 0 else "%dm%ds" % (m, s % 60)
    if m < 180:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        return "%dh" % h if m % 60 == 0 else "%dh%dm" % (h, m % 60)
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd" % (h // 24) if h % 24 == 0 else "%dd%dh" % (h // 24, h % 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    if h < 24 * 365 * 8:
        dy = (h // 24) % 365
        return "%dy" % (h // 24 // 365) if dy == 0 else "%dy%dd" % (h // 24 // 365, dy)
    return "%dy" % (h // 24 // 365)


# ---------------------------------------------------------------------------------------
# label and field selectors

_SEL_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|!=|=|\s+in\s+|\s+notin\s+)\s*(?P<val>\([^)]*\)|[A-Za-z0-9_.-]*))?\s*$")


def split_selector(s):
    """Split a selector at commas that are not inside parentheses."""
    terms, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur)
    return terms


def parse_label_selector(s):
    """Return a list of (op, key, values) or raise ApiError 400 on bad syntax."""
    reqs = []
    if not s:
        return reqs
    for term in split_selector(s):
        m = _SEL_TERM.match(term)
        if not m:
            raise ApiError(400, "BadRequest", "unable to parse requirement: %r" % term.strip())
        key, op, val = m.group("key"), m.group("op"), m.group("val")
        if m.group("neg"):
            if op:
                raise ApiError(400, "BadRequest", "unable to parse requirement: %r" % term)
            reqs.append(("!", key, None))
            continue
        if op is None:
            reqs.append(("exists", key, None))
            continue
        op = op.strip()
        if op in ("in", "notin"):
            if not (val.startswith("(") and val.endswith(")")):
                raise ApiError(400, "BadRequest", "set requirement needs parentheses: %r" % term)
            vals = [v.strip() for v in val[1:-1].split(",") if v.strip()]
            if not vals:
                raise ApiError(400, "BadRequest", "for 'in', 'notin' operators, values set can't be empty")
            reqs.append((op, key, set(vals)))
        else:
            if val.startswith("("):
                raise ApiError(400, "BadRequest", "unable to parse requirement: %r" % term)
            reqs.append(("!=" if op == "!=" else "=", key, val))
    return reqs


def labels_match(reqs, labels):
    labels = labels or {}
    for op, key, val in reqs:
        have = key in labels
        v = labels.get(key)
        if op == "exists" and not have:
            return False
        if op == "!" and have:
            return False
        if op == "=" and v != val:
            return False
        if op == "!=" and have and v == val:
            return False
        if op == "in" and (not have or v not in val):
            return False
        if op == "notin" and have and v in val:
            return False
    return True


def parse_field_selector(s):
    reqs = []
    for term in split_selector(s or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", term)
        if not m:
            raise ApiError(400, "BadRequest", "invalid field selector: %r" % term)
        reqs.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return reqs


def fields_match(reqs, obj):
    for path, eq, val in reqs:
        cur = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        have = "" if cur is None else str(cur)
        if (have == val) != eq:
            return False
    return True


# ---------------------------------------------------------------------------------------
# patches


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch; returns a new value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge(target, patch):
    """Strategic merge patch, approximated: a merge patch whose lists of objects that
    all carry "name" merge by name, and whose $-directives are honoured or dropped."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and v.get("$patch") == "delete":
            out.pop(k, None)
        elif isinstance(v, list) and isinstance(out.get(k), list) and _named_list(v) \
                and _named_list(out[k]):
            out[k] = _merge_named_list(out[k], v)
        elif isinstance(v, list):
            out[k] = [_strip_directives(x) for x in v]
        else:
            out[k] = strategic_merge(out.get(k), v)
    return out


def _named_list(lst):
    return bool(lst) and all(isinstance(x, dict) and "name" in x for x in lst)


def _merge_named_list(old, patch):
    out = [copy.deepcopy(x) for x in old]
    for item in patch:
        idx = next((i for i, x in enumerate(out) if x.get("name") == item["name"]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(_strip_directives(item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


def _strip_directives(v):
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", "JSON pointer must start with /: %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict):
            cur = cur[p]
        else:
            raise KeyError(p)
    return cur


def json_patch(doc, ops):
    """RFC 6902; raises ApiError 422 on a failed op (and on a failed test)."""
    doc = copy.deepcopy(doc)
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    for op in ops:
        try:
            kind, parts = op["op"], _pointer(op["path"])
            if kind == "test":
                if _walk(doc, parts) != op.get("value"):
                    raise ApiError(422, "Invalid", "the server rejected our request due to an "
                                   "error in our request: test failed at %s" % op["path"])
                continue
            if kind in ("move", "copy"):
                val = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = _remove(doc, _pointer(op["from"]))
                doc = _add(doc, parts, val)
            elif kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                doc = _remove(doc, parts)
            elif kind == "replace":
                _walk(doc, parts)
                doc = _remove(doc, parts)
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            else:
                raise ApiError(422, "Invalid", "unknown json patch op %r" % kind)
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise ApiError(422, "Invalid", "json patch %s %s failed: %r" % (
                op.get("op"), op.get("path"), e))
    return doc


def _add(doc, parts, val):
    if not parts:
        return val
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(val)
        else:
            i = int(last)
            if i < 0 or i > len(parent):
                raise IndexError(i)
            parent.insert(i, val)
    elif isinstance(parent, dict):
        parent[last] = val
    else:
        raise KeyError(last)
    return doc


def _remove(doc, parts):
    if not parts:
        raise KeyError("root")
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        parent.pop(int(parts[-1]))
    else:
        del parent[parts[-1]]
    return doc


# ---------------------------------------------------------------------------------------
# structural schemas: defaulting, pruning, validation


def _typeof(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def apply_defaults(v, schema):
    """Fill in schema defaults under v (in place); v is the value the schema describes."""
    if not isinstance(schema, dict):
        return
    if isinstance(v, dict):
        props = schema.get("properties") or {}
        for k, sub in props.items():
            if k not in v and isinstance(sub, dict) and "default" in sub:
                v[k] = copy.deepcopy(sub["default"])
        for k, x in v.items():
            if k in props:
                apply_defaults(x, props[k])
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(x, schema["additionalProperties"])
    elif isinstance(v, list) and isinstance(schema.get("items"), dict):
        for x in v:
            apply_defaults(x, schema["items"])


def prune(v, schema, path, pruned):
    """Drop fields the structural schema does not know (in place); note their paths."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(v, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        if props is None and addl is None:
            return
        for k in list(v.keys()):
            if props and k in props:
                prune(v[k], props[k], path + "." + k, pruned)
            elif isinstance(addl, dict):
                prune(v[k], addl, path + "." + k, pruned)
            elif addl is True:
                pass
            else:
                pruned.append((path + "." + k).lstrip("."))
                del v[k]
    elif isinstance(v, list) and isinstance(schema.get("items"), dict):
        for i, x in enumerate(v):
            prune(x, schema["items"], "%s[%d]" % (path, i), pruned)


def validate(v, schema, path, causes):
    """OpenAPI v3 checks the apiserver runs on custom resources (CEL is not run here)."""
    if not isinstance(schema, dict):
        return
    t = schema.get("type")
    have = _typeof(v)
    if v is None:
        if not schema.get("nullable") and t:
            causes.append((path, "Invalid value: null: %s in body must be of type %s" % (
                path, t)))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if have not in ("integer", "string"):
            causes.append((path, "Invalid value: must be an integer or a string"))
        return
    if t and not (t == have or (t == "number" and have == "integer")):
        causes.append((path, "Invalid value: \"%s\": %s in body must be of type %s" % (
            have, path, t)))
        return
    if "enum" in schema and v not in schema["enum"]:
        causes.append((path, "Unsupported value: %s: supported values: %s" % (
            json.dumps(v), ", ".join(json.dumps(e) for e in schema["enum"]))))
    if have in ("integer", "number"):
        if "minimum" in schema and v < schema["minimum"]:
            causes.append((path, "Invalid value: %s: %s in body should be greater than or "
                           "equal to %s" % (v, path, schema["minimum"])))
        if "maximum" in schema and v > schema["maximum"]:
            causes.append((path, "Invalid value: %s: %s in body should be less than or "
                           "equal to %s" % (v, path, schema["maximum"])))
        if schema.get("format") == "int32" and not -2**31 <= v < 2**31:
            causes.append((path, "Invalid value: %s: out of int32 range" % v))
    if have == "string":
        if "minLength" in schema and len(v) < schema["minLength"]:
            causes.append((path, "Invalid value: %s: %s in body should be at least %d chars "
                           "long" % (json.dumps(v), path, schema["minLength"])))
        if "maxLength" in schema and len(v) > schema["maxLength"]:
            causes.append((path, "Too long: may not be more than %d bytes" % schema["maxLength"]))
        if "pattern" in schema and not re.search(schema["pattern"], v):
            causes.append((path, "Invalid value: %s: %s in body should match '%s'" % (
                json.dumps(v), path, schema["pattern"])))
        if schema.get("format") == "date-time" and parse_time(v) is None:
            causes.append((path, "Invalid value: %s: must be a date-time" % json.dumps(v)))
    if have == "array":
        if "minItems" in schema and len(v) < schema["minItems"]:
            causes.append((path, "Invalid value: %s should have at least %d items" % (
                path, schema["minItems"])))
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            causes.append((path, "Too many: %d: must have at most %d items" % (
                len(v), schema["maxItems"])))
        for i, x in enumerate(v):
            validate(x, schema.get("items"), "%s[%d]" % (path, i), causes)
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen = set()
            for i, x in enumerate(v):
                k = json.dumps([x.get(kk) if isinstance(x, dict) else None for kk in keys])
                if k in seen:
                    causes.append(("%s[%d]" % (path, i), "Duplicate value: %s" % k))
                seen.add(k)
        elif schema.get("x-kubernetes-list-type") == "set":
            if len({json.dumps(x, sort_keys=True) for x in v}) != len(v):
                causes.append((path, "Duplicate value in a set list"))
    if have == "object":
        for r in schema.get("required") or []:
            if r not in v:
                causes.append(("%s.%s" % (path, r) if path else r, "Required value"))
        if "maxProperties" in schema and len(v) > schema["maxProperties"]:
            causes.append((path, "Too many: %d: must have at most %d items" % (
                len(v), schema["maxProperties"])))
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, x in v.items():
            sub = props.get(k, addl if isinstance(addl, dict) else None)
            if sub is not None and not (path == "" and k == "metadata"):
                validate(x, sub, "%s.%s" % (path, k) if path else k, causes)


# ---------------------------------------------------------------------------------------
# tables (kubectl get) and JSONPath


def jsonpath(obj, path):
    """The JSONPath subset printer columns use: .a.b, .a[0], .a[*].b, .a[?(@.k=="v")].b"""
    toks = re.findall(r"\.([A-Za-z0-9_-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*"
                      r"[\"']([^\"']*)[\"']\)\]|\['([^']+)'\]", path.strip("{}"))
    cur = [obj]
    for name, idx, fkey, fval, quoted in toks:
        nxt = []
        for c in cur:
            if name or quoted:
                k = name or quoted
                if isinstance(c, dict) and k in c:
                    nxt.append(c[k])
            elif idx:
                if isinstance(c, list):
                    nxt.extend(c if idx == "*" else c[int(idx):int(idx) + 1])
            elif fkey:
                if isinstance(c, list):
                    for x in c:
                        v = x
                        for p in fkey.split("."):
                            v = v.get(p) if isinstance(v, dict) else None
                        if v is not None and str(v) == fval:
                            nxt.append(x)
        cur = nxt
    return cur


def table_columns(t):
    name = {"name": "Name", "type": "string", "format": "name", "priority": 0,
            "description": "Name must be unique within a namespace."}
    cols = t.columns
    if cols is None:
        return [name, {"name": "Age", "type": "date", "format": "", "priority": 0,
                       "description": "CreationTimestamp", "jsonPath": ".metadata.creationTimestamp"}]
    out = [name]
    for c in cols:
        out.append({"name": c["name"], "type": c.get("type", "string"),
                    "format": c.get("format", ""), "description": c.get("description", ""),
                    "priority": c.get("priority", 0), "jsonPath": c["jsonPath"]})
    return out


def table_row(t, cols, obj, include):
    cells = [obj["metadata"]["name"]]
    now = time.time()
    for c in cols[1:]:
        vals = jsonpath(obj, c["jsonPath"])
        if not vals:
            cells.append(None)
            continue
        v = vals[0]
        if c["type"] == "date":
            ts = parse_time(v) if isinstance(v, str) else None
            cells.append(human_duration(now - ts.timestamp()) if ts else None)
        elif c["type"] == "string":
            cells.append(v if isinstance(v, str) else json.dumps(v))
        elif c["type"] == "integer":
            cells.append(v if isinstance(v, int) else None)
        else:
            cells.append(v)
    row = {"cells": cells}
    if include == "Object":
        row["object"] = obj
    elif include != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj["metadata"]}
    return row


def to_table(t, objs, rv, include, cont=None, with_columns=True):
    cols = table_columns(t)
    tab = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
           "metadata": {"resourceVersion": rv},
           "rows": [table_row(t, cols, o, include) for o in objs]}
    if cont:
        tab["metadata"]["continue"] = cont
    if with_columns:
        tab["columnDefinitions"] = [{k: v for k, v in c.items() if k != "jsonPath"}
                                    for c in cols]
    return tab


def wants_table(accept):
    return "as=Table" in (accept or "")


# ---------------------------------------------------------------------------------------
# protobuf bodies: `kubectl create secret|configmap|namespace` sends these, nothing else


def _pb_fields(buf):
    """Decode one protobuf message into [(field, wiretype, value)]."""
    out, i = [], 0
    while i < len(buf):
        key, i = _pb_varint(buf, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _pb_varint(buf, i)
        elif wt == 2:
            n, i = _pb_varint(buf, i)
            if n > len(buf) - i:
                raise ApiError(400, "BadRequest", "truncated protobuf body")
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ApiError(400, "BadRequest", "unsupported protobuf wire type %d" % wt)
        out.append((f, wt, v))
    return out


def _pb_varint(buf, i):
    shift = v = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ApiError(400, "BadRequest", "bad protobuf varint")
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def _pb_map(entries, as_bytes=False):
    out = {}
    for e in entries:
        kv = {f: v for f, _, v in _pb_fields(e)}
        val = kv.get(2, b"")
        out[kv.get(1, b"").decode()] = base64.b64encode(val).decode() if as_bytes else val.decode()
    return out


def _pb_meta(buf):
    m, labels, annos, fins = {}, [], [], []
    for f, _, v in _pb_fields(buf):
        if f in (1, 2, 3) and v:
            m[{1: "name", 2: "generateName", 3: "namespace"}[f]] = v.decode()
        elif f == 11:
            labels.append(v)
        elif f == 12:
            annos.append(v)
        elif f == 14:
            fins.append(v.decode())
    if labels:
        m["labels"] = _pb_map(labels)
    if annos:
        m["annotations"] = _pb_map(annos)
    if fins:
        m["finalizers"] = fins
    return m


def protobuf_to_json(raw):
    """The k8s protobuf envelope (magic k8s\0 + runtime.Unknown) of a Secret, ConfigMap
    or Namespace, as the JSON object it stands for."""
    if raw[:4] != b"k8s\x00":
        raise ApiError(415, "UnsupportedMediaType", "not a kubernetes protobuf body")
    env = {f: v for f, _, v in _pb_fields(raw[4:])}
    tm = {f: v.decode() for f, _, v in _pb_fields(env.get(1, b""))}
    kind = tm.get(2, "")
    obj = {"apiVersion": tm.get(1, "v1"), "kind": kind}
    maps = {}
    for f, wt, v in _pb_fields(env.get(2, b"")):
        if f == 1:
            obj["metadata"] = _pb_meta(v)
        elif wt == 2:
            maps.setdefault(f, []).append(v)
        else:
            maps[f] = v
    if kind == "Secret":
        if 2 in maps:
            obj["data"] = _pb_map(maps[2], as_bytes=True)
        if 3 in maps:
            obj["type"] = maps[3][0].decode()
        if 4 in maps:
            obj["stringData"] = _pb_map(maps[4])
        if 5 in maps:
            obj["immutable"] = bool(maps[5])
    elif kind == "ConfigMap":
        if 2 in maps:
            obj["data"] = _pb_map(maps[2])
        if 3 in maps:
            obj["binaryData"] = _pb_map(maps[3], as_bytes=True)
        if 4 in maps:
            obj["immutable"] = bool(maps[4])
    elif kind != "Namespace":
        raise ApiError(415, "UnsupportedMediaType", "protobuf is only understood for Secret, "
                       "ConfigMap and Namespace; send application/json")
    return obj
