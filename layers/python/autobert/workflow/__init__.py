"""The retraining workflow: the domain logic behind the Step Functions state machine (``statemachines/
retrain.asl.json``) and its local execution.

- ``merge``: feedback → new dataset version (deterministic, never loses or rewrites feedback)
- ``gate``: candidate vs live on the fixed holdout → promote or reject
- ``registry``: model versions and their status; which one is live
- ``runs``: run records, their event history, the one-run-at-a-time lock's bookkeeping
- ``triggers``: manual, feedback-count threshold and schedule triggers
- ``steps``: the state machine's task handlers (``functions/*.py`` are one-line wrappers)
- ``local``: the local executor (the ASL file run by aws-local-stepfunctions) and the local scheduler
"""
