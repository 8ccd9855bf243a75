"""autobert.serverless_yml: serverless.yml's CloudFormation short-form tags read as their long forms, and the http
events of its functions in both of the framework's spellings."""

from __future__ import annotations

import yaml

from autobert.serverless_yml import CloudFormationLoader, HttpRoute, http_routes, load

DOC = """
functions:
  predict:
    handler: functions/predict.lambda_handler
    onError: !Ref AlertsTopic
    role: !GetAtt PredictRole.Arn
    events:
      - http: {path: predict, method: post, private: true}
      - schedule: rate(1 hour)
  items:
    handler: functions/items.handler
    events:
      - http: GET items/{id}
      - http: {path: /items, method: any}
resources:
  Conditions:
    HasEmail: !Not [!Equals [!Ref AlertEmail, ""]]
  Resources:
    Topic:
      Properties:
        Name: !Sub "${AWS::StackName}-alerts"
        Email: !If [HasEmail, !Ref AlertEmail, !Ref "AWS::NoValue"]
        Zones: !GetAZs ""
"""


def test_cloudformation_tags_become_their_long_forms():
    config = yaml.load(DOC, Loader=CloudFormationLoader)  # noqa: S506 — a SafeLoader subclass
    assert config["functions"]["predict"]["onError"] == {"Ref": "AlertsTopic"}
    assert config["functions"]["predict"]["role"] == {"Fn::GetAtt": ["PredictRole", "Arn"]}
    assert config["resources"]["Conditions"]["HasEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlertEmail"}, ""]}]}
    props = config["resources"]["Resources"]["Topic"]["Properties"]
    assert props["Name"] == {"Fn::Sub": "${AWS::StackName}-alerts"}
    assert props["Email"] == {"Fn::If": ["HasEmail", {"Ref": "AlertEmail"}, {"Ref": "AWS::NoValue"}]}
    assert props["Zones"] == {"Fn::GetAZs": ""}


def test_http_events_in_both_spellings_and_nothing_else():
    routes = http_routes(yaml.load(DOC, Loader=CloudFormationLoader))  # noqa: S506
    assert routes == [
        HttpRoute("predict", "/predict", "POST", True, "functions/predict.py", "lambda_handler"),
        HttpRoute("items", "/items/{id}", "GET", False, "functions/items.py", "handler"),
        HttpRoute("items", "/items", "ANY", False, "functions/items.py", "handler"),
    ]


def test_the_repositorys_serverless_yml_loads():
    config = load()
    assert config["service"] and "predict" in config["functions"] and "Resources" in config["resources"]
