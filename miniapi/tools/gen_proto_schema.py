#!/usr/bin/env python3
"""Generate miniapi/src/proto/schema.rs: the protobuf field tables of the served
Kubernetes types, for decoding `application/vnd.kubernetes.protobuf` request bodies
(client-go's generated clientsets, and so kubectl's typed commands, send protobuf).

Field numbers and types come from the k8s-pb crate's prost structs; JSON field names
come from k8s-openapi's serde code (matched case- and underscore-insensitively).

Usage: gen_proto_schema.py <k8s-pb-src-dir> <k8s-openapi-src-dir/v1_33> > src/proto/schema.rs
"""
import os
import re
import sys

PB, OA = sys.argv[1], sys.argv[2]
ROOTS = [
    "api.core.v1.Namespace", "api.core.v1.Pod", "api.core.v1.Node", "api.core.v1.Service",
    "api.core.v1.Endpoints", "api.core.v1.ConfigMap", "api.core.v1.Secret",
    "api.core.v1.ServiceAccount", "api.core.v1.Event", "api.core.v1.Binding",
    "api.apps.v1.ReplicaSet", "api.apps.v1.Deployment", "api.coordination.v1.Lease",
    "api.discovery.v1.EndpointSlice", "api.events.v1.Event", "api.autoscaling.v1.Scale",
    "apimachinery.pkg.apis.meta.v1.DeleteOptions", "apimachinery.pkg.runtime.Unknown",
]
# Wire-level special types, decoded by hand in proto/mod.rs.
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time", "apimachinery.pkg.apis.meta.v1.MicroTime",
    "apimachinery.pkg.util.intstr.IntOrString", "apimachinery.pkg.api.resource.Quantity",
    "apimachinery.pkg.apis.meta.v1.FieldsV1", "apimachinery.pkg.runtime.RawExtension",
    "apimachinery.pkg.apis.meta.v1.Duration",
}

ATTR = re.compile(r'#\[prost\((.*)\)\]')
FIELD = re.compile(r'pub (r#)?(\w+): (.*),$')
STRUCT = re.compile(r'pub struct (\w+) \{')


def module_of(path):
    rel = os.path.relpath(os.path.dirname(path), PB)
    return rel.split(os.sep)


def resolve(ty, module):
    ty = ty.replace("::core::option::Option<", "").replace("::prost::alloc::vec::Vec<", "")
    ty = ty.replace(">", "").strip()
    if "BTreeMap<" in ty:
        ty = ty.split(",")[-1].strip()
    segs = [s for s in ty.split("::") if s]
    base = list(module)
    while segs and segs[0] == "super":
        segs.pop(0)
        base.pop()
    if len(segs) == 1:
        return ".".join(base + segs)
    return ".".join(base + segs) if segs[0] not in ("api", "apimachinery") else ".".join(segs)


messages = {}
for root, _, files in os.walk(PB):
    for f in files:
        if f != "mod.rs":
            continue
        path = os.path.join(root, f)
        module = module_of(path)
        cur, attr, pending = None, None, None
        for line in open(path):
            line = line.strip()
            if pending is not None:
                pending += " " + line
                if line.endswith(",") and pending.count("<") == pending.count(">"):
                    line, pending = pending.replace(", >", ">").replace(",>", ">"), None
                else:
                    continue
            elif line.startswith("pub ") and ":" in line and not line.endswith(",") and cur:
                pending = line
                continue
            m = STRUCT.match(line)
            if m:
                cur = ".".join(module + [m.group(1)])
                messages[cur] = []
                continue
            if line == "}":
                cur = None
                continue
            if cur is None:
                continue
            m = ATTR.match(line)
            if m:
                attr = m.group(1)
                continue
            m = FIELD.match(line)
            if m and attr:
                messages[cur].append((attr, m.group(2), m.group(3), module))
                attr = None

json_names = {}


def oa_names(module):
    key = "/".join(module)
    if key in json_names:
        return json_names[key]
    d = {}
    mdir = os.path.join(OA, *module)
    if os.path.isdir(mdir):
        for f in os.listdir(mdir):
            if f.endswith(".rs"):
                for m in re.finditer(r'"([A-Za-z0-9$\-]+)" => Field::Key_', open(os.path.join(mdir, f)).read()):
                    d.setdefault(m.group(1).lower(), m.group(1))
    json_names[key] = d
    return d


def camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def field_entry(attr, name, ty, module):
    tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
    repeated = "repeated" in attr
    jname = oa_names(module).get(name.replace("_", "").lower(), camel(name))
    kind = attr.split(",")[0].strip()
    target = None
    if kind.startswith("btree_map"):
        val = re.search(r'"string, (\w+)"', attr).group(1)
        if val == "message":
            target = resolve(ty, module)
            t = 'Ty::Map(&MapVal::Msg("%s"))' % target
        else:
            t = "Ty::Map(&MapVal::%s)" % {"string": "Str", "bytes": "Bytes"}[val]
    elif kind == "message":
        target = resolve(ty, module)
        t = 'Ty::Msg("%s")' % target
    else:
        t = {"string": "Ty::Str", "bool": "Ty::Bool", "int32": "Ty::I32", "int64": "Ty::I64",
             "bytes = \"vec\"": "Ty::Bytes", "double": "Ty::F64"}[kind]
    return tag, jname, t, repeated, target


seen, order, queue = set(), [], list(ROOTS)
tables = {}
while queue:
    name = queue.pop()
    if name in seen or name in SPECIAL:
        continue
    if name not in messages:
        sys.stderr.write("missing message %s\n" % name)
        continue
    seen.add(name)
    order.append(name)
    rows = []
    for attr, fname, ty, module in messages[name]:
        tag, jname, t, rep, target = field_entry(attr, fname, ty, module)
        rows.append((tag, jname, t, rep))
        if target:
            queue.append(target)
    tables[name] = sorted(rows)

out = sys.stdout
out.write("//! GENERATED by tools/gen_proto_schema.py from the k8s-pb and k8s-openapi crates — do not edit.\n")
out.write("//! Protobuf field tables (tag, JSON name, type) of the served types and what they reach.\n\n")
out.write("use super::{Field, MapVal, Ty};\n\n")
out.write("/// Message name → fields, sorted by name.\n")
out.write("pub static MESSAGES: &[(&str, &[Field])] = &[\n")
for name in sorted(order):
    out.write('    ("%s", &[\n' % name)
    for tag, jname, t, rep in tables[name]:
        out.write('        Field { tag: %d, name: "%s", ty: %s, repeated: %s },\n' % (tag, jname, t, "true" if rep else "false"))
    out.write("    ]),\n")
out.write("];\n")
