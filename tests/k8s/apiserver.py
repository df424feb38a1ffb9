#!/usr/bin/env python3
"""apiserver.py: a small Kubernetes API server for tests (Python 3 stdlib only; the pure
helpers live in k8s_model.py beside it).

No real kube-apiserver can run on the test machines, so this stands in for one. It is
faithful to what sluice-controller and kubectl rely on, and no more:

  * discovery (/version, /api, /apis, group versions), /openapi/v3 (so that kubectl's
    server-side field validation is used) and a minimal /openapi/v2;
  * CRUD, PATCH (merge, strategic as merge with name-keyed lists, JSON patch, apply),
    list with labelSelector/fieldSelector/limit/continue, and Table output for kubectl;
  * one global resourceVersion counter, watch with resourceVersion, bookmarks, and
    410 (as an ERROR event, like the watch cache) once history is compacted;
  * 409 on stale updates and on create of an existing name; the /status split
    (spec changes bump metadata.generation, main-resource writes ignore status, status
    writes ignore everything but status); finalizers and deletionTimestamp; uid,
    creationTimestamp; ownerReference garbage collection; namespaces must exist;
  * CustomResourceDefinitions: applying one serves its resources at once, with
    defaulting, pruning, OpenAPI validation (not CEL) and its printer columns;
  * fault injection and request counters on /_fault and /_stats (no auth there);
    tests/k8s/README.md lists the actions.

  python3 tests/k8s/apiserver.py --port 0 [--token T] [--history N] [--bookmark-s S]
prints "listening on 127.0.0.1:PORT" on stdout once it serves.
"""

import argparse
import base64
import bisect
import copy
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 16 << 20
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from k8s_model import (  # noqa: E402
    ApiError, apply_defaults, merge_patch, json_patch, now_rfc3339, parse_field_selector,
    parse_label_selector, fields_match, labels_match, protobuf_to_json, prune,
    strategic_merge, to_table, validate, wants_table)


# ---------------------------------------------------------------------------------------
# resource types


class ResourceType:
    """One served resource: group/version/plural and what the server knows about it."""

    def __init__(self, group, version, plural, kind, namespaced=True, singular=None,
                 short=(), status=False, generation=False, categories=(), crd=None,
                 schema=None, columns=None):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced = namespaced
        self.singular = singular or kind.lower()
        self.short = list(short)
        self.status = status
        self.generation = generation
        self.categories = list(categories)
        self.crd = crd  # name of the CRD that serves it, or None for built-ins
        self.schema = schema
        self.columns = columns

    @property
    def api_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def key(self):
        return (self.group, self.plural)

    def qualified(self):
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    def discovery(self):
        out = [{"name": self.plural, "singularName": self.singular,
                "namespaced": self.namespaced, "kind": self.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch",
                          "update", "watch"]}]
        if self.short:
            out[0]["shortNames"] = self.short
        if self.categories:
            out[0]["categories"] = self.categories
        if self.status:
            out.append({"name": self.plural + "/status", "singularName": "",
                        "namespaced": self.namespaced, "kind": self.kind,
                        "verbs": ["get", "patch", "update"]})
        return out


BUILTINS = [
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, short=["ns"],
                 status=True),
    ResourceType("", "v1", "pods", "Pod", short=["po"], status=True, generation=True,
                 categories=["all"]),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "configmaps", "ConfigMap", short=["cm"]),
    ResourceType("", "v1", "events", "Event", short=["ev"]),
    ResourceType("", "v1", "services", "Service", short=["svc"], status=True,
                 categories=["all"]),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short=["sa"]),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease"),
    ResourceType("events.k8s.io", "v1", "events", "Event", short=["ev"]),
    ResourceType("apps", "v1", "deployments", "Deployment", short=["deploy"], status=True,
                 generation=True, categories=["all"]),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", short=["sts"], status=True,
                 generation=True, categories=["all"]),
    ResourceType("batch", "v1", "jobs", "Job", status=True, generation=True,
                 categories=["all"]),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                 "CustomResourceDefinition", namespaced=False, short=["crd", "crds"],
                 status=True, generation=True),
]


# ---------------------------------------------------------------------------------------
# the store


class Event:
    __slots__ = ("rv", "type", "key", "ns", "old", "new", "_wire")

    def __init__(self, rv, etype, key, ns, old, new):
        self.rv, self.type, self.key, self.ns, self.old, self.new = rv, etype, key, ns, old, new
        self._wire = {}

    def wire(self, etype):
        """The event as one JSON line, encoded once per event type."""
        b = self._wire.get(etype)
        if b is None:
            b = (json.dumps({"type": etype, "object": self.new}, separators=(",", ":"))
                 + "\n").encode()
            self._wire[etype] = b
        return b


class Store:
    """All objects, the resourceVersion counter and the bounded event history.

    Stored objects are never changed in place: every write stores a new dict, so
    watchers and history may share them without copying.
    """

    def __init__(self, history=10000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 1
        self.types = {}        # (group, plural) -> ResourceType
        self.objects = {}      # (group, plural) -> {(ns, name): obj}
        self.sorted_keys = {}  # (group, plural) -> sorted list of (ns, name), lazily built
        self.owned = {}        # owner uid -> set of ((group, plural), (ns, name))
        self.events = []       # history, rv ascending
        self.oldest_rv = 1     # a watch from below this gets 410
        self.history = history
        self.epoch = 0         # bumped to end every watch (drop_watches)
        self.drop_prefixes = []
        for t in BUILTINS:
            self.register(t)
        for ns in ("default", "kube-system", "kube-public"):
            self.create(self.types[("", "namespaces")], None,
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # -- types --------------------------------------------------------------------------

    def register(self, t):
        self.types[t.key] = t
        self.objects.setdefault(t.key, {})

    def type_for(self, group, version, plural):
        t = self.types.get((group, plural))
        if t is None or t.version != version:
            return None
        return t

    def groups(self):
        """{group: [versions]} of everything served."""
        out = {}
        for t in self.types.values():
            out.setdefault(t.group, [])
            if t.version not in out[t.group]:
                out[t.group].append(t.version)
        return out

    # -- history ------------------------------------------------------------------------

    def _emit(self, etype, t, ns, old, new):
        ev = Event(self.rv, etype, t.key, ns, old, new)
        self.events.append(ev)
        if len(self.events) > self.history:
            drop = len(self.events) - self.history
            self.oldest_rv = self.events[drop - 1].rv + 1
            del self.events[:drop]
        self.cond.notify_all()

    def compact(self):
        with self.lock:
            self.events = []
            self.oldest_rv = self.rv + 1
            self.cond.notify_all()

    def events_after(self, rv):
        """Events with resourceVersion > rv; None if history no longer reaches back."""
        if rv + 1 < self.oldest_rv:
            return None
        if not self.events or self.events[-1].rv <= rv:
            return []
        lo, hi = 0, len(self.events)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.events[mid].rv <= rv:
                lo = mid + 1
            else:
                hi = mid
        return self.events[lo:]

    # -- reads --------------------------------------------------------------------------

    def get(self, t, ns, name):
        return self.objects[t.key].get((ns or "", name))

    def keys_sorted(self, t):
        ks = self.sorted_keys.get(t.key)
        if ks is None:
            ks = sorted(self.objects[t.key].keys())
            self.sorted_keys[t.key] = ks
        return ks

    # -- writes (caller holds no lock; each takes it) -----------------------------------

    def _next_rv(self):
        self.rv += 1
        return str(self.rv)

    def _put(self, t, ns, name, obj, old):
        k = (ns or "", name)
        store = self.objects[t.key]
        if old is None:
            self.sorted_keys.pop(t.key, None)
        store[k] = obj
        self._index_owners(t, k, old, obj)

    def _index_owners(self, t, k, old, new):
        def uids(o):
            if not o:
                return set()
            return {r.get("uid") for r in o.get("metadata", {}).get("ownerReferences") or []
                    if isinstance(r, dict) and r.get("uid")}
        before, after = uids(old), uids(new)
        for u in before - after:
            s = self.owned.get(u)
            if s:
                s.discard((t.key, k))
                if not s:
                    del self.owned[u]
        for u in after - before:
            self.owned.setdefault(u, set()).add((t.key, k))

    def create(self, t, ns, obj):
        with self.lock:
            meta = obj.setdefault("metadata", {})
            name = meta.get("name")
            if not name and meta.get("generateName"):
                for _ in range(100):
                    name = meta["generateName"] + uuid.uuid4().hex[:5]
                    if self.get(t, ns, name) is None:
                        break
                meta["name"] = name
            if not name:
                raise ApiError(422, "Invalid", "%s \"\" is invalid: metadata.name: Required "
                               "value: name or generateName is required" % t.kind,
                               {"kind": t.kind, "group": t.group,
                                "causes": [{"reason": "FieldValueRequired",
                                            "message": "Required value",
                                            "field": "metadata.name"}]})
            check_name(t, name)
            if t.namespaced:
                nso = self.get(self.types[("", "namespaces")], None, ns)
                if nso is None:
                    raise ApiError(404, "NotFound", "namespaces \"%s\" not found" % ns,
                                   {"name": ns, "kind": "namespaces"})
                if nso["metadata"].get("deletionTimestamp"):
                    raise ApiError(403, "Forbidden", "%s \"%s\" is forbidden: unable to create "
                                   "new content in namespace %s because it is being "
                                   "terminated" % (t.qualified(), name, ns))
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            if t.crd:
                crd = self.get(self.types[("apiextensions.k8s.io", "customresourcedefinitions")],
                               None, t.crd)
                if crd is None or crd["metadata"].get("deletionTimestamp"):
                    raise ApiError(405, "MethodNotAllowed", "create not allowed while custom "
                                   "resource definition is terminating")
            if self.get(t, ns, name) is not None:
                raise ApiError(409, "AlreadyExists", "%s \"%s\" already exists" % (
                    t.qualified(), name), {"name": name, "group": t.group, "kind": t.plural})
            for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
                meta.pop(f, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if t.generation or t.crd:
                meta["generation"] = 1
            if t.status and t.crd:
                obj.pop("status", None)
            before_store(self, t, None, obj)
            meta["resourceVersion"] = self._next_rv()
            self._put(t, ns, name, obj, None)
            self._emit("ADDED", t, ns, None, obj)
            after_store(self, t, None, obj)
            return obj

    def update(self, t, ns, name, new, subresource=None, require_rv=None):
        """Replace an object (PUT, and every patch after it is applied)."""
        with self.lock:
            old = self.get(t, ns, name)
            if old is None:
                raise not_found(t, name)
            meta = new.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise ApiError(400, "BadRequest", "the name of the object (%s) does not match "
                               "the name on the URL (%s)" % (meta.get("name"), name))
            if t.namespaced and meta.get("namespace", ns) != ns:
                raise ApiError(400, "BadRequest", "the namespace of the object (%s) does not "
                               "match the namespace on the URL (%s)" % (meta.get("namespace"), ns))
            rv = meta.get("resourceVersion")
            if require_rv is None:
                require_rv = bool(t.crd)
            if rv in (None, "") and require_rv:
                raise ApiError(422, "Invalid", "%s \"%s\" is invalid: metadata.resourceVersion: "
                               "Invalid value: 0x0: must be specified for an update" % (
                                   t.kind, name))
            if rv not in (None, "") and rv != old["metadata"]["resourceVersion"]:
                raise conflict(t, name)
            if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
                raise ApiError(409, "Conflict", "Precondition failed: UID in precondition: %s, "
                               "UID in object meta: %s" % (meta["uid"], old["metadata"]["uid"]))
            if subresource == "status":
                obj = copy.deepcopy(old)
                if "status" in new:
                    obj["status"] = new["status"]
                else:
                    obj.pop("status", None)
            else:
                obj = new
                if t.status and "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
                elif t.status:
                    obj.pop("status", None)
                m, om = obj["metadata"], old["metadata"]
                for f in ("uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation"):
                    if f in om:
                        m[f] = om[f]
                    else:
                        m.pop(f, None)
                m["name"] = name
                if t.namespaced:
                    m["namespace"] = ns
                if om.get("deletionTimestamp"):
                    added = set(m.get("finalizers") or []) - set(om.get("finalizers") or [])
                    if added:
                        raise ApiError(422, "Invalid", "%s \"%s\" is invalid: metadata.finalizers:"
                                       " Forbidden: no new finalizers can be added if the object "
                                       "is being deleted, found new finalizers %s" % (
                                           t.kind, name, json.dumps(sorted(added))))
                if "generation" in om and _spec_changed(old, obj):
                    m["generation"] = om["generation"] + 1
            obj.setdefault("apiVersion", old.get("apiVersion"))
            obj.setdefault("kind", old.get("kind"))
            before_store(self, t, old, obj)
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if obj == old:
                return old  # a no-op write changes nothing and sends no event
            if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
                return self._remove(t, ns, name, old, obj)
            obj["metadata"]["resourceVersion"] = self._next_rv()
            self._put(t, ns, name, obj, old)
            self._emit("MODIFIED", t, ns, old, obj)
            after_store(self, t, old, obj)
            return obj

    def delete(self, t, ns, name, preconditions=None, propagation=None):
        """DELETE: returns (object, gone_now)."""
        with self.lock:
            old = self.get(t, ns, name)
            if old is None:
                raise not_found(t, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise ApiError(409, "Conflict", "Precondition failed: UID in precondition: %s, "
                               "UID in object meta: %s" % (pre["uid"], old["metadata"]["uid"]))
            if pre.get("resourceVersion") and pre["resourceVersion"] != \
                    old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "Precondition failed: ResourceVersion in "
                               "precondition: %s, ResourceVersion in object meta: %s" % (
                                   pre["resourceVersion"], old["metadata"]["resourceVersion"]))
            finals = list(old["metadata"].get("finalizers") or [])
            if t.key == ("", "namespaces"):
                self._empty_namespace(name)
            if t.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
                if self._empty_crd(old):
                    finals = finals + ["customresourcecleanup.apiextensions.k8s.io"]
            if not finals:
                return self._remove(t, ns, name, old, None, propagation), True
            if old["metadata"].get("deletionTimestamp"):
                return old, False
            obj = copy.deepcopy(old)
            m = obj["metadata"]
            m["finalizers"] = finals
            m["deletionTimestamp"] = now_rfc3339()
            m["deletionGracePeriodSeconds"] = 0
            if "generation" in m:
                m["generation"] += 1
            m["resourceVersion"] = self._next_rv()
            self._put(t, ns, name, obj, old)
            self._emit("MODIFIED", t, ns, old, obj)
            return obj, False

    def _remove(self, t, ns, name, old, last, propagation=None):
        """Take an object out of the store: DELETED event, then garbage collection."""
        obj = copy.deepcopy(last if last is not None else old)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        del self.objects[t.key][(ns or "", name)]
        self.sorted_keys.pop(t.key, None)
        self._index_owners(t, (ns or "", name), old, None)
        self._emit("DELETED", t, ns, old, obj)
        if propagation != "Orphan":
            self._collect(old["metadata"]["uid"], "Background")
        after_remove(self, t, obj)
        return obj

    def _collect(self, uid, propagation):
        for key, (ons, oname) in sorted(self.owned.get(uid, set())):
            ot = self.types.get(key)
            if ot is None or self.get(ot, ons, oname) is None:
                continue
            try:
                self.delete(ot, ons, oname, propagation=propagation)
            except ApiError:
                pass

    def _empty_namespace(self, ns):
        for t in list(self.types.values()):
            if not t.namespaced:
                continue
            for (ons, oname) in [k for k in self.objects[t.key] if k[0] == ns]:
                try:
                    self.delete(t, ons, oname)
                except ApiError:
                    pass

    def _empty_crd(self, crd):
        """Delete a CRD's objects; True while some remain (finalizers)."""
        t = crd_type(self, crd)
        if t is None:
            return False
        for (ons, oname) in list(self.objects.get(t.key, {}).keys()):
            try:
                self.delete(t, ons, oname)
            except ApiError:
                pass
        return bool(self.objects.get(t.key))


def _spec_changed(old, new):
    a = {k: v for k, v in old.items() if k not in ("metadata", "status")}
    b = {k: v for k, v in new.items() if k not in ("metadata", "status")}
    return a != b


def check_name(t, name):
    pat = DNS_LABEL if t.key == ("", "namespaces") else DNS_SUBDOMAIN
    if len(name) > (63 if pat is DNS_LABEL else 253) or not pat.match(name):
        raise ApiError(422, "Invalid", "%s \"%s\" is invalid: metadata.name: Invalid value: "
                       "\"%s\": a lowercase RFC 1123 %s must consist of lower case alphanumeric "
                       "characters, '-' or '.'" % (t.kind, name, name,
                                                   "label" if pat is DNS_LABEL else "subdomain"),
                       {"name": name, "kind": t.kind,
                        "causes": [{"reason": "FieldValueInvalid", "field": "metadata.name",
                                    "message": "Invalid value"}]})


def not_found(t, name):
    return ApiError(404, "NotFound", "%s \"%s\" not found" % (t.qualified(), name),
                    {"name": name, "group": t.group, "kind": t.plural})


def conflict(t, name):
    return ApiError(409, "Conflict", "Operation cannot be fulfilled on %s \"%s\": the object "
                    "has been modified; please apply your changes to the latest version and "
                    "try again" % (t.qualified(), name),
                    {"name": name, "group": t.group, "kind": t.plural})


# ---------------------------------------------------------------------------------------
# CRDs: what applying one changes


def crd_served_version(crd):
    spec = crd.get("spec") or {}
    versions = spec.get("versions") or []
    for v in versions:
        if v.get("storage"):
            return v
    return versions[0] if versions else None


def crd_type(store, crd):
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    t = store.types.get((spec.get("group"), names.get("plural")))
    if t is not None and t.crd == crd["metadata"]["name"]:
        return t
    return None


def validate_crd(crd):
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural = spec.get("group"), names.get("plural")
    causes = []
    if not group or "." not in group:
        causes.append(("spec.group", "Invalid value: should be a domain with at least one dot"))
    if not plural or not names.get("kind"):
        causes.append(("spec.names", "Required value: plural and kind"))
    if crd["metadata"].get("name") != "%s.%s" % (plural, group):
        causes.append(("metadata.name", "Invalid value: must be spec.names.plural+\".\"+"
                       "spec.group"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", "Unsupported value: must be Namespaced or Cluster"))
    versions = spec.get("versions") or []
    if not versions:
        causes.append(("spec.versions", "Required value"))
    if sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(("spec.versions", "Invalid value: must have exactly one version marked "
                       "as storage version"))
    for i, v in enumerate(versions):
        s = ((v.get("schema") or {}).get("openAPIV3Schema"))
        if not isinstance(s, dict) or s.get("type") != "object":
            causes.append(("spec.versions[%d].schema.openAPIV3Schema" % i,
                           "Required value: schemas are required and must be of type object"))
        else:
            _structural(s, "spec.versions[%d].schema.openAPIV3Schema" % i, causes)
    if causes:
        raise invalid("CustomResourceDefinition", crd["metadata"].get("name", ""), causes,
                      "apiextensions.k8s.io")


def _structural(s, path, causes):
    """The structural-schema rules that matter: a type everywhere, and defaults that are
    valid against their own schema."""
    if not isinstance(s, dict):
        return
    if "type" not in s and not s.get("x-kubernetes-int-or-string") and \
            not s.get("x-kubernetes-preserve-unknown-fields"):
        causes.append((path + ".type", "Required value: must not be empty for specified "
                       "object fields"))
    if "default" in s:
        c = []
        validate(s["default"], s, path + ".default", c)
        causes.extend(c)
    for k, sub in (s.get("properties") or {}).items():
        _structural(sub, "%s.properties[%s]" % (path, k), causes)
    if isinstance(s.get("items"), dict):
        _structural(s["items"], path + ".items", causes)
    if isinstance(s.get("additionalProperties"), dict):
        _structural(s["additionalProperties"], path + ".additionalProperties", causes)


def invalid(kind, name, causes, group=""):
    msg = "%s \"%s\" is invalid: %s" % (kind, name, ", ".join(
        "%s: %s" % (f, m) for f, m in causes) if len(causes) > 1 else
        "%s: %s" % causes[0] if causes else "")
    if len(causes) > 1:
        msg = "%s \"%s\" is invalid: [%s]" % (kind, name, ", ".join(
            "%s: %s" % (f, m) for f, m in causes))
    return ApiError(422, "Invalid", msg, {
        "name": name, "group": group, "kind": kind,
        "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f}
                   for f, m in causes]})


def before_store(store, t, old, obj):
    """Server-side work on an object about to be stored (defaulting, status of CRDs)."""
    if t.crd and t.schema:
        apply_defaults(obj, t.schema)
    if t.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        validate_crd(obj)
        spec = obj["spec"]
        names = dict(spec["names"])
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        other = store.types.get((spec["group"], names["plural"]))
        if other is not None and other.crd != obj["metadata"]["name"]:
            raise ApiError(409, "Conflict", "plural %s is already served" % names["plural"])
        stamp = (old or {}).get("status", {}).get("conditions", [{}])[0].get(
            "lastTransitionTime") or now_rfc3339()
        obj["status"] = {
            "acceptedNames": names,
            "storedVersions": [crd_served_version(obj)["name"]],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": stamp},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": stamp},
            ]}
        if obj["metadata"].get("deletionTimestamp"):
            obj["status"]["conditions"].append(
                {"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                 "message": "CustomResource deletion is in progress",
                 "lastTransitionTime": obj["metadata"]["deletionTimestamp"]})


def after_store(store, t, old, obj):
    if t.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        spec = obj["spec"]
        v = crd_served_version(obj)
        names = obj["status"]["acceptedNames"]
        prev = crd_type(store, old) if old else None
        if prev is not None and (prev.group, prev.plural) != (spec["group"], names["plural"]):
            store.types.pop(prev.key, None)
        nt = ResourceType(
            spec["group"], v["name"], names["plural"], names["kind"],
            namespaced=spec["scope"] == "Namespaced", singular=names["singular"],
            short=names.get("shortNames") or [], categories=names.get("categories") or [],
            status="status" in (v.get("subresources") or {}), generation=True,
            crd=obj["metadata"]["name"], schema=(v.get("schema") or {}).get("openAPIV3Schema"),
            columns=v.get("additionalPrinterColumns"))
        store.register(nt)


def after_remove(store, t, obj):
    if t.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        ct = crd_type(store, obj)
        if ct is not None:
            store.types.pop(ct.key, None)
            store.objects.pop(ct.key, None)
            store.sorted_keys.pop(ct.key, None)
        return
    if t.crd:
        crds = store.types[("apiextensions.k8s.io", "customresourcedefinitions")]
        crd = store.get(crds, None, t.crd)
        if crd and crd["metadata"].get("deletionTimestamp") and not store.objects.get(t.key):
            nc = copy.deepcopy(crd)
            nc["metadata"]["finalizers"] = [
                f for f in nc["metadata"].get("finalizers") or []
                if f != "customresourcecleanup.apiextensions.k8s.io"]
            store.update(crds, None, t.crd, nc, require_rv=False)
        return
    if obj["metadata"].get("ownerReferences") is None:
        return


# ---------------------------------------------------------------------------------------
# admission of custom resources: defaulting, pruning, validation


def admit(t, obj, old, field_validation, validate_on):
    """Returns warnings; raises 400 (strict unknown fields) or 422 (schema)."""
    warnings = []
    if not t.crd or not t.schema:
        return warnings
    pruned = []
    body = {k: v for k, v in obj.items() if k != "metadata"}
    prune(body, t.schema, "", pruned)
    for k in list(obj.keys()):
        if k != "metadata" and k not in body:
            del obj[k]
    if pruned:
        if field_validation == "Strict":
            raise ApiError(400, "BadRequest", "strict decoding error: " + ", ".join(
                "unknown field \"%s\"" % p for p in pruned))
        if field_validation != "Ignore":
            warnings.extend("unknown field \"%s\"" % p for p in pruned)
    apply_defaults(obj, t.schema)
    if validate_on:
        causes = []
        validate({k: v for k, v in obj.items() if k != "metadata"}, t.schema, "", causes)
        if causes:
            raise invalid(t.kind, obj["metadata"].get("name", ""), causes, t.group)
    return warnings


# ---------------------------------------------------------------------------------------
# OpenAPI documents: enough for kubectl to use server-side field validation


def openapi_v3_index(store):
    paths = {}
    for g, versions in store.groups().items():
        for v in versions:
            p = "api/%s" % v if not g else "apis/%s/%s" % (g, v)
            paths[p] = {"serverRelativeURL": "/openapi/v3/%s?hash=%d" % (p, store.rv)}
    return {"paths": paths}


def openapi_v3_gv(store, group, version):
    schemas, paths = {}, {}
    fv = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"},
          "uniqueItems": True}
    dr = {"name": "dryRun", "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
    fm = {"name": "fieldManager", "in": "query", "schema": {"type": "string"},
          "uniqueItems": True}
    for t in list(store.types.values()):
        if t.group != group or t.version != version:
            continue
        gvk = [{"group": group, "version": version, "kind": t.kind}]
        ref = "%s.%s.%s" % (".".join(reversed(group.split("."))) if group else "io.k8s.api.core",
                            version, t.kind)
        schema = copy.deepcopy(t.schema) if t.schema else {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}
        schema["x-kubernetes-group-version-kind"] = gvk
        schemas[ref] = schema
        base = "/api/%s" % version if not group else "/apis/%s/%s" % (group, version)
        coll = base + ("/namespaces/{namespace}/%s" if t.namespaced else "/%s") % t.plural
        op = {"x-kubernetes-group-version-kind": gvk[0],
              "responses": {"200": {"description": "OK", "content": {"application/json": {
                  "schema": {"$ref": "#/components/schemas/" + ref}}}}}}
        paths[coll] = {"post": dict(op, parameters=[dr, fm, fv],
                                    **{"x-kubernetes-action": "post"}),
                       "get": dict(op, **{"x-kubernetes-action": "list"})}
        paths[coll + "/{name}"] = {
            "get": dict(op, **{"x-kubernetes-action": "get"}),
            "put": dict(op, parameters=[dr, fm, fv], **{"x-kubernetes-action": "put"}),
            "patch": dict(op, parameters=[dr, fm, fv, {"name": "force", "in": "query",
                                                       "schema": {"type": "boolean"}}],
                          **{"x-kubernetes-action": "patch"}),
            "delete": dict(op, **{"x-kubernetes-action": "delete"})}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths, "components": {"schemas": schemas}}


# ---------------------------------------------------------------------------------------
# faults and counters


class Faults:
    """Queued faults: each matches a path prefix (and optional methods) and fires count
    times (-1: until cleared)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []
        self.stats = {}
        self.token = None

    def add(self, rule):
        with self.lock:
            self.rules.append(rule)

    def clear(self):
        with self.lock:
            self.rules = []

    def take(self, method, path, is_watch):
        """The first rule matching this request (consuming one of its count), or None."""
        with self.lock:
            for r in self.rules:
                if not path.startswith(r.get("path_prefix", "")):
                    continue
                methods = r.get("methods")
                if methods and method not in methods:
                    continue
                if "watch" in r and bool(r["watch"]) != is_watch:
                    continue
                if r.get("count", 1) == 0:
                    continue
                if r.get("count", 1) > 0:
                    r["count"] = r.get("count", 1) - 1
                self.rules = [x for x in self.rules if x.get("count", 1) != 0]
                return dict(r)
            return None

    def count(self, verb, resource):
        with self.lock:
            k = "%s %s" % (verb, resource)
            self.stats[k] = self.stats.get(k, 0) + 1


# ---------------------------------------------------------------------------------------
# HTTP


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, store, opts):
        super().__init__(addr, Handler)
        self.store = store
        self.opts = opts
        self.faults = Faults()
        self.faults.token = opts.token
        self.validate = not opts.no_validate
        self.bookmark_s = opts.bookmark_s
        self.watchers = 0


def classify(method, path, is_watch):
    """(verb, resource) of a resource request for the counters, e.g. ("list", "topics") or
    ("update", "topics/status"); None for discovery and the like."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return None
    if rest[:1] == ["watch"]:
        rest = rest[1:]
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        rest = rest[2:]
    if not rest:
        return None
    name = rest[1] if len(rest) > 1 else None
    resource = rest[0] + ("/" + rest[2] if len(rest) > 2 else "")
    verb = {"GET": "watch" if is_watch else ("get" if name else "list"), "POST": "create",
            "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection"}.get(method, method.lower())
    return verb, resource


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-test-apiserver/1"

    def setup(self):
        # Headers and body go out in separate writes; with Nagle on, the body would wait
        # for the peer's delayed ACK of the headers (40 ms a response), which no real
        # apiserver costs its clients.
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.opts.verbose:
            sys.stderr.write("apiserver: %s\n" % (fmt % args))

    # -- plumbing -----------------------------------------------------------------------

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    self.rfile.readline(1024)
                    break
                if len(data) + n > MAX_BODY:
                    raise ApiError(413, "RequestEntityTooLarge", "request body too large")
                data += self.rfile.read(n)
                self.rfile.readline(1024)
            return data
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", "request body too large")
        return self.rfile.read(n) if n > 0 else b""

    def json_body(self, raw):
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            return protobuf_to_json(raw)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            ctype = self.headers.get("Content-Type", "")
            if "yaml" in ctype:
                try:
                    import yaml  # only present where python3-yaml is installed
                    return yaml.safe_load(raw)
                except Exception:  # noqa: BLE001
                    pass
            raise ApiError(400, "BadRequest", "the body of the request was in an unknown "
                           "format - accepted media types include: application/json")

    def send_json(self, code, obj, headers=None):
        body = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_status(self, err):
        self.send_json(err.code, err.status(), err.headers)

    def dispatch(self, method):
        self.close_connection = False
        try:
            url = urlsplit(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            raw = self.read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            if url.path.startswith("/_"):
                return self.admin(method, url.path, raw)
            if self.server.faults.token and url.path not in ("/healthz", "/readyz", "/livez"):
                auth = self.headers.get("Authorization", "")
                if auth != "Bearer " + self.server.faults.token:
                    raise ApiError(401, "Unauthorized", "Unauthorized")
            is_watch = q.get("watch") in ("1", "true", "True") or "/watch/" in url.path
            kind = classify(method, url.path, is_watch)
            if kind:
                self.server.faults.count(*kind)
            fault = self.server.faults.take(method, url.path, is_watch)
            if fault and self.apply_fault(fault, is_watch):
                return
            self.route(method, url.path, q, raw)
        except ApiError as e:
            self.send_error_status(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 -- report, keep serving
            traceback.print_exc()
            self.send_error_status(ApiError(500, "InternalError", "internal error: %r" % e))

    def apply_fault(self, f, is_watch):
        """Act on an injected fault; True if the request has been answered."""
        action = f.get("action")
        if action == "slow":
            time.sleep(f.get("delay_ms", 1000) / 1000.0)
            return False
        if action == "410":
            if is_watch:
                self.start_stream()
                self.write_chunk(self.gone_event("injected"))
                self.end_stream()
                return True
            raise ApiError(410, "Expired", "too old resource version: injected")
        if action == "409":
            raise ApiError(409, "Conflict", "Operation cannot be fulfilled: the object has "
                           "been modified; please apply your changes to the latest version "
                           "and try again (injected)")
        if action == "429":
            raise ApiError(429, "TooManyRequests", "too many requests (injected)",
                           headers={"Retry-After": str(f.get("retry_after", 1))})
        if action in ("500", "503"):
            raise ApiError(int(action), "InternalError" if action == "500" else
                           "ServiceUnavailable", "injected %s" % action)
        if action == "401":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if action == "reset":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        return False

    # -- admin (test control) -----------------------------------------------------------

    def admin(self, method, path, raw):
        srv = self.server
        body = self.json_body(raw) or {}
        if path == "/_fault" and method == "POST":
            action = body.get("action")
            if action == "drop_watches":
                with srv.store.lock:
                    srv.store.drop_prefixes.append((srv.store.epoch + 1,
                                                    body.get("path_prefix", "")))
                    srv.store.epoch += 1
                    srv.store.cond.notify_all()
            elif action == "compact":
                srv.store.compact()
            elif action == "clear":
                srv.faults.clear()
            elif action == "set_token":
                srv.faults.token = body.get("token") or None
            elif action == "validate":
                srv.validate = bool(body.get("enabled", True))
            elif action == "bookmarks":
                srv.bookmark_s = float(body.get("interval_s", srv.bookmark_s))
            elif action in ("410", "409", "429", "500", "503", "401", "slow", "reset"):
                srv.faults.add(body)
            else:
                raise ApiError(400, "BadRequest", "unknown fault action %r" % action)
            return self.send_json(200, {"ok": True, "resourceVersion": str(srv.store.rv)})
        if path == "/_fault" and method == "DELETE":
            srv.faults.clear()
            return self.send_json(200, {"ok": True})
        if path == "/_fault" and method == "GET":
            with srv.faults.lock:
                return self.send_json(200, {"rules": srv.faults.rules})
        if path == "/_bulk" and method == "POST":
            return self.bulk(body)
        if path == "/_stats":
            with srv.faults.lock:
                out = {"requests": dict(srv.faults.stats), "resourceVersion": str(srv.store.rv),
                       "watchers": srv.watchers,
                       "objects": {"%s/%s" % k if k[0] else k[1]: len(v)
                                   for k, v in srv.store.objects.items()}}
                if method == "DELETE":
                    srv.faults.stats = {}
            return self.send_json(200, out)
        raise ApiError(404, "NotFound", "no admin endpoint %s %s" % (method, path))

    def bulk(self, body):
        """POST /_bulk {"path": a collection, "items": [objects]}: creates every item as a
        POST to path would (admission, defaults, validation, events), in one request, for
        benchmarks that need many objects fast. Answers {"created": n, "errors": [...]}."""
        store = self.server.store
        parts = [p for p in (body.get("path") or "").split("/") if p]
        items = body.get("items")
        if not isinstance(items, list) or len(parts) < 2:
            raise ApiError(400, "BadRequest", "want {\"path\": collection, \"items\": [...]}")
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        else:
            group, version, rest = parts[1], parts[2] if len(parts) > 2 else "", parts[3:]
        ns = None
        if len(rest) == 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        with store.lock:
            t = store.type_for(group, version, rest[0]) if len(rest) == 1 else None
        if t is None:
            raise ApiError(404, "NotFound", "no collection %s" % body.get("path"))
        created, errors = 0, []
        for obj in items:
            try:
                self.check_kind(t, obj)
                if t.status and t.crd:
                    obj.pop("status", None)
                admit(t, obj, None, "Strict", self.server.validate)
                store.create(t, ns, obj)
                created += 1
            except ApiError as e:
                if len(errors) < 10:
                    errors.append(e.status())
        return self.send_json(200, {"created": created, "errors": errors})

    # -- routing ------------------------------------------------------------------------

    def route(self, method, path, q, raw):
        store = self.server.store
        parts = [p for p in path.split("/") if p]
        if method == "GET" and path in ("/healthz", "/readyz", "/livez"):
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(body)
            return
        if method == "GET" and path == "/version":
            return self.send_json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0-sluice",
                                        "gitCommit": "0", "gitTreeState": "clean",
                                        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23",
                                        "compiler": "gc", "platform": "linux/amd64"})
        if method == "GET" and path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{
                                            "clientCIDR": "0.0.0.0/0",
                                            "serverAddress": self.headers.get("Host", "")}]})
        if method == "GET" and path == "/apis":
            with store.lock:
                groups = []
                for g, vs in sorted(store.groups().items()):
                    if not g:
                        continue
                    gv = [{"groupVersion": "%s/%s" % (g, v), "version": v} for v in vs]
                    groups.append({"name": g, "versions": gv, "preferredVersion": gv[0]})
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                        "groups": groups})
        if method == "GET" and path.startswith("/openapi/v3"):
            with store.lock:
                if path.rstrip("/") == "/openapi/v3":
                    return self.send_json(200, openapi_v3_index(store))
                rest = path[len("/openapi/v3/"):].split("/")
                if rest[0] == "api" and len(rest) == 2:
                    return self.send_json(200, openapi_v3_gv(store, "", rest[1]))
                if rest[0] == "apis" and len(rest) == 3:
                    return self.send_json(200, openapi_v3_gv(store, rest[1], rest[2]))
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and path == "/openapi/v2":
            # kubectl asks for protobuf here; 406 makes it fall back cleanly
            if "protobuf" in (self.headers.get("Accept") or "") and \
                    "json" not in (self.headers.get("Accept") or ""):
                raise ApiError(406, "NotAcceptable", "only application/json is served")
            return self.send_json(200, {"swagger": "2.0", "info": {"title": "Kubernetes",
                                                                    "version": "v1.32.0"},
                                        "paths": {}, "definitions": {}})
        if parts[:1] == ["api"]:
            if len(parts) == 1:
                raise ApiError(404, "NotFound", "not found")
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[:1] == ["apis"] and len(parts) == 2:
            with store.lock:
                vs = store.groups().get(parts[1])
            if not vs:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            gv = [{"groupVersion": "%s/%s" % (parts[1], v), "version": v} for v in vs]
            return self.send_json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                                        "versions": gv, "preferredVersion": gv[0]})
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "method not allowed")
            with store.lock:
                res = [r for t in store.types.values() if t.group == group and t.version == version
                       for r in t.discovery()]
            if not res and not (group == "" and version == "v1"):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                        "groupVersion": "%s/%s" % (group, version) if group
                                        else version, "resources": res})
        watch_path = False
        if rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        ns = None
        with store.lock:
            if len(rest) >= 3 and rest[0] == "namespaces" and \
                    store.type_for(group, version, rest[2]) is not None and \
                    store.type_for(group, version, rest[2]).namespaced:
                ns, rest = rest[1], rest[2:]
            t = store.type_for(group, version, rest[0]) if rest else None
        if t is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub and not (sub == "status" and t.status)):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if t.namespaced and name is not None and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if t.namespaced is False and ns is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        is_watch = watch_path or q.get("watch") in ("1", "true", "True")
        if is_watch:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "watch needs GET")
            if name:
                q["fieldSelector"] = ",".join(filter(None, [q.get("fieldSelector"),
                                                            "metadata.name=" + name]))
            return self.watch(t, ns, q)
        if method == "GET" and name is None:
            return self.list(t, ns, q)
        if method == "GET":
            with store.lock:
                obj = store.get(t, ns, name)
                if obj is None:
                    raise not_found(t, name)
            if wants_table(self.headers.get("Accept")):
                return self.send_json(200, to_table(t, [obj], obj["metadata"]["resourceVersion"],
                                                    q.get("includeObject", "Metadata")))
            return self.send_json(200, obj)
        if method == "POST" and name is None:
            return self.create(t, ns, q, raw)
        if method == "PUT" and name:
            return self.put(t, ns, name, sub, q, raw)
        if method == "PATCH" and name:
            return self.patch(t, ns, name, sub, q, raw)
        if method == "DELETE" and name and not sub:
            return self.delete(t, ns, name, q, raw)
        if method == "DELETE" and name is None:
            return self.delete_collection(t, ns, q, raw)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on "
                       "the requested resource")

    # -- verbs --------------------------------------------------------------------------

    def check_kind(self, t, obj):
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        if obj.get("kind") not in (None, t.kind) or \
                obj.get("apiVersion") not in (None, t.api_version):
            raise ApiError(400, "BadRequest", "the API version in the data (%s) does not match "
                           "the expected API version (%s) or kind %s != %s" % (
                               obj.get("apiVersion"), t.api_version, obj.get("kind"), t.kind))
        obj["kind"], obj["apiVersion"] = t.kind, t.api_version
        if not isinstance(obj.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")

    def finish_write(self, code, obj, warnings, q):
        headers = {}
        if warnings:
            headers["Warning"] = ", ".join('299 - "%s"' % w.replace('"', "'")
                                           for w in warnings)
        self.send_json(code, obj, headers)

    def dry_run(self, q):
        return q.get("dryRun") == "All"

    def create(self, t, ns, q, raw):
        obj = self.json_body(raw)
        self.check_kind(t, obj)
        store = self.server.store
        if t.namespaced:
            bns = (obj.get("metadata") or {}).get("namespace")
            if bns and bns != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                               "match the namespace sent on the request")
        if t.status and t.crd:
            obj.pop("status", None)
        warnings = admit(t, obj, None, q.get("fieldValidation"), self.server.validate)
        if self.dry_run(q):
            return self.finish_write(201, obj, warnings, q)
        out = store.create(t, ns, obj)
        self.finish_write(201, out, warnings, q)

    def put(self, t, ns, name, sub, q, raw):
        obj = self.json_body(raw)
        self.check_kind(t, obj)
        store = self.server.store
        with store.lock:
            old = store.get(t, ns, name)
            if old is None:
                raise not_found(t, name)
            merged = self.admit_update(t, old, obj, sub, q)
            if self.dry_run(q):
                return self.finish_write(200, merged[0], merged[1], q)
            out = store.update(t, ns, name, merged[0], sub)
        self.finish_write(200, out, merged[1], q)

    def admit_update(self, t, old, obj, sub, q):
        """Admission of an update: for /status only the status is checked."""
        if sub == "status":
            cand = copy.deepcopy(old)
            if "status" in obj:
                cand["status"] = obj["status"]
            cand["metadata"]["resourceVersion"] = obj.get("metadata", {}).get(
                "resourceVersion", old["metadata"]["resourceVersion"])
            warnings = admit(t, cand, old, q.get("fieldValidation"), self.server.validate)
            obj = dict(obj)
            if "status" in cand:
                obj["status"] = cand["status"]
            return obj, warnings
        if t.status and t.crd:
            obj = dict(obj)
            if "status" in old:
                obj["status"] = copy.deepcopy(old["status"])
            else:
                obj.pop("status", None)
        warnings = admit(t, obj, old, q.get("fieldValidation"), self.server.validate)
        return obj, warnings

    def patch(self, t, ns, name, sub, q, raw):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        p = self.json_body(raw)
        store = self.server.store
        with store.lock:
            old = store.get(t, ns, name)
            if old is None:
                if ctype == "application/apply-patch+yaml" and not sub:
                    self.check_kind(t, p)
                    p.setdefault("metadata", {})["name"] = name
                    warnings = admit(t, p, None, q.get("fieldValidation"), self.server.validate)
                    return self.finish_write(201, store.create(t, ns, p), warnings, q)
                raise not_found(t, name)
            base = copy.deepcopy(old)
            if ctype == "application/json-patch+json":
                new = json_patch(base, p)
            elif ctype == "application/merge-patch+json":
                new = merge_patch(base, p)
            elif ctype == "application/strategic-merge-patch+json":
                if t.crd:
                    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in "
                                   "an unknown format - accepted media types include: "
                                   "application/json-patch+json, application/merge-patch+json, "
                                   "application/apply-patch+yaml")
                new = strategic_merge(base, p)
            elif ctype == "application/apply-patch+yaml":
                new = merge_patch(base, p)
            else:
                raise ApiError(415, "UnsupportedMediaType", "unsupported patch type %r" % ctype)
            if not isinstance(new, dict):
                raise ApiError(422, "Invalid", "patch result is not an object")
            # a patch carries a precondition only if it names a resourceVersion itself
            prv = None
            if isinstance(p, dict):
                prv = (p.get("metadata") or {}).get("resourceVersion")
            new.setdefault("metadata", {})
            new["metadata"]["resourceVersion"] = prv if prv else old["metadata"]["resourceVersion"]
            self.check_kind(t, new)
            obj, warnings = self.admit_update(t, old, new, sub, q)
            if self.dry_run(q):
                return self.finish_write(200, obj, warnings, q)
            out = store.update(t, ns, name, obj, sub, require_rv=False)
        self.finish_write(200, out, warnings, q)

    def delete(self, t, ns, name, q, raw):
        opts = self.json_body(raw) or {}
        prop = opts.get("propagationPolicy") or q.get("propagationPolicy")
        if opts.get("orphanDependents") is True:
            prop = "Orphan"
        if self.dry_run(q) or opts.get("dryRun") == ["All"]:
            with self.server.store.lock:
                obj = self.server.store.get(t, ns, name)
                if obj is None:
                    raise not_found(t, name)
            return self.send_json(200, obj)
        obj, gone = self.server.store.delete(t, ns, name, opts.get("preconditions"), prop)
        if gone:
            return self.send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                        "status": "Success", "details": {
                                            "name": name, "group": t.group, "kind": t.plural,
                                            "uid": obj["metadata"]["uid"]}})
        self.send_json(200, obj)

    def delete_collection(self, t, ns, q, raw):
        opts = self.json_body(raw) or {}
        store = self.server.store
        with store.lock:
            objs = self.select(t, ns, q)
            for o in objs:
                try:
                    store.delete(t, o["metadata"].get("namespace"), o["metadata"]["name"],
                                 None, opts.get("propagationPolicy"))
                except ApiError:
                    pass
            self.send_json(200, {"kind": t.kind + "List", "apiVersion": t.api_version,
                                 "metadata": {"resourceVersion": str(store.rv)}, "items": objs})

    def select(self, t, ns, q, start_after=None, limit=0):
        store = self.server.store
        lsel = parse_label_selector(q.get("labelSelector", ""))
        fsel = parse_field_selector(q.get("fieldSelector", ""))
        keys = store.keys_sorted(t)
        i = 0
        if start_after is not None:
            i = bisect.bisect_right(keys, tuple(start_after))
        elif ns:
            i = bisect.bisect_left(keys, (ns, ""))
        out = []
        objs = store.objects[t.key]
        for k in keys[i:]:
            if ns and k[0] != ns:
                if k[0] > ns:
                    break
                continue
            o = objs[k]
            if lsel and not labels_match(lsel, o["metadata"].get("labels")):
                continue
            if fsel and not fields_match(fsel, o):
                continue
            out.append(o)
            if limit and len(out) > limit:
                break
        return out

    def list(self, t, ns, q):
        store = self.server.store
        limit = int(q.get("limit") or 0)
        cont = q.get("continue")
        start, rv = None, None
        if cont:
            try:
                c = json.loads(base64.urlsafe_b64decode(cont.encode()))
                start, rv = c["k"], c["rv"]
            except (ValueError, KeyError):
                raise ApiError(400, "BadRequest", "invalid continue token")
            if int(rv) + 1 < store.oldest_rv:
                raise ApiError(410, "Expired", "The provided continue parameter is too old to "
                               "display a consistent list result. You can start a new list "
                               "without the continue parameter.")
        with store.lock:
            objs = self.select(t, ns, q, start, limit)
            if rv is None:
                rv = str(store.rv)
            next_tok = None
            if limit and len(objs) > limit:
                objs = objs[:limit]
                last = objs[-1]["metadata"]
                next_tok = base64.urlsafe_b64encode(json.dumps(
                    {"k": [last.get("namespace", ""), last["name"]], "rv": rv}).encode()).decode()
            if wants_table(self.headers.get("Accept")):
                body = to_table(t, objs, rv, q.get("includeObject", "Metadata"), next_tok)
            else:
                body = {"kind": t.kind + "List", "apiVersion": t.api_version,
                        "metadata": {"resourceVersion": rv}, "items": objs}
                if next_tok:
                    body["metadata"]["continue"] = next_tok
            data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # -- watch --------------------------------------------------------------------------

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def gone_event(self, rv):
        st = ApiError(410, "Expired", "too old resource version: %s (%d)" % (
            rv, self.server.store.oldest_rv - 1)).status()
        return (json.dumps({"type": "ERROR", "object": st}) + "\n").encode()

    def watch(self, t, ns, q):
        """Stream events as chunked JSON lines until timeoutSeconds, a drop or a close."""
        store = self.server.store
        lsel = parse_label_selector(q.get("labelSelector", ""))
        fsel = parse_field_selector(q.get("fieldSelector", ""))
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true", "True")
        timeout = float(q.get("timeoutSeconds") or 0) or 1800.0
        table = wants_table(self.headers.get("Accept"))
        rv_param = q.get("resourceVersion", "")
        deadline = time.monotonic() + timeout
        initial = []
        with store.lock:
            epoch = store.epoch
            if rv_param in ("", "0"):
                # "start at most recent": synthetic ADDED for what exists, then changes
                for k in store.keys_sorted(t):
                    o = store.objects[t.key][k]
                    if ns and k[0] != ns:
                        continue
                    if (not lsel or labels_match(lsel, o["metadata"].get("labels"))) and \
                            (not fsel or fields_match(fsel, o)):
                        initial.append(o)
                last = store.rv
            else:
                try:
                    last = int(rv_param)
                except ValueError:
                    raise ApiError(400, "BadRequest", "invalid resourceVersion %r" % rv_param)
                gone = store.events_after(last) is None
        self.start_stream()
        with store.lock:
            self.server.watchers += 1
        path = self.path
        try:
            if rv_param not in ("", "0") and gone:
                self.write_chunk(self.gone_event(rv_param))
                return
            first_table = True
            for o in initial:
                self.write_chunk(self.encode_event("ADDED", o, t, table, first_table))
                first_table = False
            next_bm = time.monotonic() + self.server.bookmark_s
            while True:
                with store.lock:
                    evs = store.events_after(last)
                    while evs == [] and store.epoch == epoch:
                        now = time.monotonic()
                        wait = min(deadline, next_bm if bookmarks else deadline) - now
                        if wait <= 0:
                            break
                        store.cond.wait(wait)
                        evs = store.events_after(last)
                    dropped = store.epoch != epoch and any(
                        e > epoch and path.startswith(p) for e, p in store.drop_prefixes)
                    epoch = store.epoch
                    cur_rv = store.rv
                if dropped:
                    return
                if evs is None:
                    self.write_chunk(self.gone_event(str(last)))
                    return
                for ev in evs:
                    last = ev.rv
                    if ev.key != t.key or (ns and ev.ns != ns):
                        continue
                    etype = self.filter_event(ev, lsel, fsel)
                    if etype is None:
                        continue
                    if table:
                        self.write_chunk(self.encode_event(etype, ev.new, t, True, first_table))
                        first_table = False
                    else:
                        self.write_chunk(ev.wire(etype))
                now = time.monotonic()
                if now >= deadline:
                    return
                if bookmarks and now >= next_bm:
                    last = max(last, cur_rv)
                    self.write_chunk((json.dumps({"type": "BOOKMARK", "object": {
                        "kind": t.kind, "apiVersion": t.api_version,
                        "metadata": {"resourceVersion": str(last)}}}) + "\n").encode())
                    next_bm = now + self.server.bookmark_s
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            with store.lock:
                self.server.watchers -= 1
            if not self.close_connection:
                self.end_stream()

    def filter_event(self, ev, lsel, fsel):
        """The type a selective watcher sees: an object moving out of the selection is
        DELETED for it, one moving in is ADDED."""
        if not lsel and not fsel:
            return ev.type

        def match(o):
            return o is not None and (not lsel or labels_match(lsel, o["metadata"].get("labels"))) \
                and (not fsel or fields_match(fsel, o))
        if ev.type == "ADDED":
            return "ADDED" if match(ev.new) else None
        if ev.type == "DELETED":
            return "DELETED" if match(ev.old) else None
        was, now = match(ev.old), match(ev.new)
        if was and now:
            return "MODIFIED"
        if now:
            return "ADDED"
        if was:
            return "DELETED"
        return None

    def encode_event(self, etype, obj, t, table, with_columns):
        if table:
            obj = to_table(t, [obj], obj["metadata"]["resourceVersion"],
                           "Object", with_columns=with_columns)
        return (json.dumps({"type": etype, "object": obj}, separators=(",", ":")) + "\n").encode()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", help="require 'Authorization: Bearer TOKEN'")
    ap.add_argument("--history", type=int, default=10000,
                    help="events kept for watches; older resourceVersions get 410")
    ap.add_argument("--bookmark-s", type=float, default=5.0,
                    help="seconds between BOOKMARK events on watches that allow them")
    ap.add_argument("--no-validate", action="store_true",
                    help="store custom resources without OpenAPI validation")
    ap.add_argument("--namespace", action="append", default=[],
                    help="create this namespace at start (repeatable)")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("-v", "--verbose", action="store_true")
    opts = ap.parse_args(argv)
    store = Store(history=opts.history)
    for ns in opts.namespace:
        store.create(store.types[("", "namespaces")], None,
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    srv = Server((opts.host, opts.port), store, opts)
    if opts.tls_cert:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("listening on %s:%d" % srv.server_address[:2], flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
