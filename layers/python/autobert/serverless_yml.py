"""serverless.yml read in Python: the one YAML loader that accepts CloudFormation's short-form tags, and the HTTP
routes its functions declare (what the local API serves, exactly as API Gateway would).

    config = load()                          # the parsed file; !Ref X → {"Ref": "X"}, !Sub s → {"Fn::Sub": s}, ...
    for route in http_routes(config): ...    # HttpRoute(path="/predict", method="POST", private=True, ...)

``${...}`` variables are left as the strings they are: the routes and handlers never use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from autobert.config import REPO_ROOT

SERVERLESS_YML = REPO_ROOT / "serverless.yml"


class CloudFormationLoader(yaml.SafeLoader):
    """A safe loader that reads ``!Ref``, ``!GetAtt``, ``!Sub``, ``!If`` ... as their long forms (``{"Ref": ...}``,
    ``{"Fn::GetAtt": [...]}``) instead of failing on an unknown tag."""


def _cloudformation_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):  # !GetAtt Resource.Attribute
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _cloudformation_tag)


def load(path: Path = SERVERLESS_YML) -> dict:
    return yaml.load(path.read_text(), Loader=CloudFormationLoader)  # noqa: S506 — a SafeLoader subclass


@dataclass(frozen=True)
class HttpRoute:
    """One ``http`` event of one function: ``path`` as API Gateway serves it (leading slash), ``method`` upper-case,
    ``private`` (an API key is required), the handler's file (relative to the repository) and function name."""

    function: str
    path: str
    method: str
    private: bool
    handler_file: str
    handler_name: str


def http_routes(config: dict | None = None) -> list[HttpRoute]:
    """Every ``functions.<name>.events[].http`` of serverless.yml, long form (``{path, method, private}``) or short
    (``"POST predict"``), in the file's order."""
    config = load() if config is None else config
    routes = []
    for name, function in (config.get("functions") or {}).items():
        module, _, handler_name = function["handler"].rpartition(".")
        for event in function.get("events") or []:
            http = event.get("http") if isinstance(event, dict) else None
            if http is None:
                continue
            if isinstance(http, str):
                method, _, path = http.partition(" ")
                http = {"method": method, "path": path.strip()}
            routes.append(HttpRoute(function=name, path="/" + str(http["path"]).strip("/"),
                                    method=str(http["method"]).upper(), private=bool(http.get("private", False)),
                                    handler_file=f"{module}.py", handler_name=handler_name))
    return routes
