#!/usr/bin/env python3
"""Validates custom resources against the OpenAPI v3 schema of their CRDs.

Usage: validate_crs.py CRD_DIR MANIFEST.yaml...

kubernetes-validate knows only Kubernetes' own kinds (it warns about any
other and passes), so envoy-gen/tests/kubernetes.rs runs this for the
custom resources, with the jsonschema and PyYAML that kubernetes-validate
installs into the project's virtualenv. Strict: a field the schema does not
name is an error (the API server would drop it, or refuse it under
`kubectl --validate=strict`). A resource whose kind has no CRD here is an
error too, unless it is one of Kubernetes' own (group-less or a k8s.io
group other than the Gateway API's): the manifests name no kind nobody checks.

Not checked here (an API server does it): CEL rules
(`x-kubernetes-validations`), defaults, metadata. Prints one line per
resource; exit status 1 on any error.
"""
import copy
import sys
from pathlib import Path

import jsonschema
import yaml

# Kubernetes' own kinds, which kubernetes-validate checks.
BUILT_IN = {"v1", "apps/v1", "policy/v1", "kustomize.config.k8s.io/v1beta1"}


def load_crds(crd_dir):
    crds = {}
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    key = (f'{spec["group"]}/{version["name"]}', spec["names"]["kind"])
                    crds[key] = version["schema"]["openAPIV3Schema"]
    return crds


def to_json_schema(schema):
    """The structural schema's OpenAPI dialect as JSON Schema, closed."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: to_json_schema(value) for key, value in schema.items() if key != "x-kubernetes-validations"}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def main(argv):
    crds = load_crds(argv[0])
    status = 0
    for file in argv[1:]:
        for obj in yaml.safe_load_all(Path(file).read_text()):
            if not obj:
                continue
            key = (obj.get("apiVersion"), obj.get("kind"))
            name = f'{obj.get("kind")}/{obj.get("metadata", {}).get("name")}'
            if key not in crds:
                if key[0] in BUILT_IN:
                    continue
                print(f"ERROR {file} {name}: no CRD here for {key[0]} {key[1]}")
                status = 1
                continue
            schema = to_json_schema(copy.deepcopy(crds[key]))
            # The API server validates metadata, not the CRD's schema.
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            errors = sorted(
                jsonschema.Draft4Validator(schema).iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path]
            )
            for error in errors:
                path = ".".join(str(p) for p in error.absolute_path) or "<root>"
                print(f"ERROR {file} {name}: {path}: {error.message}")
            if errors:
                status = 1
            else:
                print(f"OK {file} {name}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
