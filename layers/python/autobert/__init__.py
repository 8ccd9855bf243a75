"""autobert: a self-improving BERT text classifier (the domain package shared by Lambdas, jobs and the CLI).

Modules that import torch/transformers (``modeling``) are only used by the training job, the inference script and
the local stack; Lambda handlers never import them, so the Lambda layer stays small.
"""

__version__ = "0.1.0"
