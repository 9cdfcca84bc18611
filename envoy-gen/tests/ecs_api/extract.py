#!/usr/bin/env python3
"""Writes register_task_definition.json: the shapes of the ECS API's
RegisterTaskDefinition request (members, required members, enum values),
taken from botocore's service model, the one the AWS CLI itself validates
`aws ecs register-task-definition --cli-input-json` with. tests/ecs.rs
checks the task definitions `envoy-gen ecs` writes against it.

    pip install botocore && python3 extract.py > register_task_definition.json
"""
import json

import botocore
import botocore.session

model = botocore.session.get_session().get_service_model("ecs")
root = model.operation_model("RegisterTaskDefinition").input_shape
shapes = {}


def visit(shape):
    if shape.name in shapes:
        return
    entry = {"type": shape.type_name}
    shapes[shape.name] = entry
    if shape.type_name == "structure":
        entry["required"] = sorted(shape.required_members)
        entry["members"] = {name: member.name for name, member in shape.members.items()}
        for member in shape.members.values():
            visit(member)
    elif shape.type_name == "list":
        entry["member"] = shape.member.name
        visit(shape.member)
    elif shape.type_name == "map":
        entry["key"] = shape.key.name
        entry["value"] = shape.value.name
        visit(shape.key)
        visit(shape.value)
    elif shape.type_name == "string" and shape.enum:
        entry["enum"] = list(shape.enum)


visit(root)
print(json.dumps({
    "source": f"botocore {botocore.__version__}, data/ecs/2014-11-13/service-2.json",
    "operation": "RegisterTaskDefinition",
    "input": root.name,
    "shapes": dict(sorted(shapes.items())),
}, indent=1))
