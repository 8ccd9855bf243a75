"""Which AWS API operations each Lambda handler can call, read from the code at test time.

A static call graph, built the way Rapid Type Analysis builds one: start at the handler module (its top-level code
and ``lambda_handler``); a plain name or ``module.attr`` reaches the function it names (a class: the class becomes
instantiated); ``obj.name`` (and ``getattr``/``hasattr(obj, "name")``) reaches the method or property ``name`` of every
class instantiated in reachable code. Repeat until nothing new is reached. Over that code:

* the boto3 clients created: ``client("s3")`` / ``boto3.client("sagemaker-runtime", ...)`` (a constant service name);
* the operations called on them: every ``x.<op>`` whose name is an operation of one of those services in botocore's
  service model (a call or a bound-method reference, e.g. ``call=self.client.create_model``), plus
  ``get_paginator("<op>")`` and ``get_waiter("<name>")`` (the waiter's operation);
* whether a request carries ``Tags`` (a ``Tags=`` keyword or a ``"Tags"`` dict key) or ``AutoRollbackConfiguration``;
* the bucket prefixes the code names: the first path segment of each ``autobert.layout`` constant or helper it uses.

A task's Lambda shell (``lambda_handler = task_handler("MergeData", services)``) reaches the step function that
``autobert.workflow.tasks.TASKS`` names for that task (the registry imports steps by name).

Only our own code is walked (``functions/`` and ``layers/python/autobert/``); boto3, powertools and the standard
library are leaves. The analysis over-approximates (a method name reaches every instantiated class's method of that
name), which errs towards "used", never towards a missing grant.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

REPO = Path(__file__).resolve().parents[2]
SOURCES = {"functions": REPO / "functions", "autobert": REPO / "layers" / "python" / "autobert"}


def builtin_type(annotation: ast.AST | None) -> bool:
    """An annotation or ``except`` clause naming only builtin types (``UnicodeDecodeError``, ``(KeyError, ValueError)``,
    ``str | None``)."""
    if isinstance(annotation, ast.Name):
        return isinstance(getattr(builtins, annotation.id, None), type)
    if isinstance(annotation, ast.Tuple):
        return bool(annotation.elts) and all(builtin_type(e) for e in annotation.elts)
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return builtin_type(annotation.left) and builtin_type(annotation.right)
    return isinstance(annotation, ast.Constant) and annotation.value is None


# ------------------------------------------------------------------------------------------------- the code base
@dataclass
class Module:
    name: str
    tree: ast.Module
    names: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> ("module"|"symbol", target)
    functions: dict[str, ast.AST] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)


def _module_name(path: Path) -> str:
    for root_name, root in SOURCES.items():
        if path.is_relative_to(root):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([root_name, *parts])
    raise ValueError(path)


@cache
def code_base() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for root in SOURCES.values():
        for path in sorted(root.rglob("*.py")):
            mod = Module(_module_name(path), ast.parse(path.read_text(), str(path)))
            modules[mod.name] = mod
    for mod in modules.values():
        package = mod.name.rsplit(".", 1)[0]
        for node in ast.walk(mod.tree):  # imports anywhere in the module (the code imports adapters lazily)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        mod.names[alias.asname] = ("module", alias.name)
                    else:
                        mod.names[alias.name.split(".")[0]] = ("module", alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    kind = "module" if target in modules else "symbol"
                    mod.names[alias.asname or alias.name] = (kind, target)
        for node in mod.tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                mod.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                mod.classes[node.name] = node
    return modules


def resolve_symbol(qualified: str):
    """``pkg.mod.name`` -> ("function", module, node) | ("class", module, node) | ("module", name) | None."""
    modules = code_base()
    if qualified in modules:
        return ("module", qualified)
    owner, _, name = qualified.rpartition(".")
    mod = modules.get(owner)
    if mod is None:
        return None
    if name in mod.functions:
        return ("function", owner, mod.functions[name])
    if name in mod.classes:
        return ("class", owner, mod.classes[name])
    if name in mod.names:  # re-exported
        kind, target = mod.names[name]
        return ("module", target) if kind == "module" and target in modules else resolve_symbol(target)
    return None


# ------------------------------------------------------------------------------------------------- boto3 services
@cache
def _botocore():
    return botocore.session.get_session()


@cache
def operations(service: str) -> dict[str, str]:
    """snake_case method name -> operation name, from botocore's service model."""
    model = _botocore().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


@cache
def iam_prefix(service: str) -> str:
    model = _botocore().get_service_model(service)
    return model.signing_name or model.endpoint_prefix


def waiter_operation(service: str, waiter: str) -> str:
    from botocore.waiter import WaiterModel

    config = _botocore().get_waiter_model(service)
    model = WaiterModel({"version": 2, "waiters": config._waiter_config})
    return model.get_waiter(xform_name(waiter).replace("_", " ").title().replace(" ", "")).operation


# Operations whose IAM action is not the operation's own name (the service authorization reference lists them).
ACTION_OF_OPERATION = {
    ("s3", "ListObjectsV2"): "ListBucket",
    ("s3", "ListObjects"): "ListBucket",
    ("s3", "HeadObject"): "GetObject",
    ("s3", "HeadBucket"): "ListBucket",
}


def iam_action(service: str, operation: str) -> str:
    return f"{iam_prefix(service)}:{ACTION_OF_OPERATION.get((service, operation), operation)}"


# -------------------------------------------------------------------------------------------------- reachability
@dataclass
class Usage:
    handler: str
    services: set[str] = field(default_factory=set)
    calls: set[tuple[str, str]] = field(default_factory=set)  # (boto3 service, operation)
    sends_tags: bool = False
    sends_auto_rollback: bool = False
    prefixes: set[str] = field(default_factory=set)  # first path segments of the bucket keys the code names
    reached: set[str] = field(default_factory=set)  # qualified function names, for error messages
    via: dict[str, str] = field(default_factory=dict)

    def path_to(self, function: str) -> list[str]:
        """How the handler reaches a function: the chain of callers."""
        chain = [function]
        while chain[-1] in self.via and self.via[chain[-1]] not in chain:
            chain.append(self.via[chain[-1]])
        return chain[::-1]

    @property
    def actions(self) -> set[str]:
        return {iam_action(s, op) for s, op in self.calls}


def _aws_test(test: ast.AST) -> bool | None:
    """True for ``x.aws``, False for ``not x.aws``, None for any other condition."""
    if isinstance(test, ast.Attribute) and test.attr == "aws":
        return True
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _aws_test(test.operand)
        return None if inner is None else not inner
    return None


def _terminates(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise)


def aws_mode_walk(node: ast.AST):
    """``ast.walk`` as the code runs in a Lambda (``Settings.mode == "aws"``): of ``if services.aws:`` /
    ``if not self.aws:`` (statements and conditional expressions) only the AWS branch, and nothing after an AWS
    branch that returns (the local-mode code that follows it)."""
    yield node
    if isinstance(node, ast.IfExp) and _aws_test(node.test) is not None:
        yield from aws_mode_walk(node.body if _aws_test(node.test) else node.orelse)
        return
    for _, value in ast.iter_fields(node):
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            yield from _aws_mode_statements(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, ast.AST):
                    yield from aws_mode_walk(item)
        elif isinstance(value, ast.AST):
            yield from aws_mode_walk(value)


def _aws_mode_statements(statements: list[ast.stmt]):
    for stmt in statements:
        mode = _aws_test(stmt.test) if isinstance(stmt, ast.If) else None
        if mode is None:
            yield from aws_mode_walk(stmt)
            continue
        branch = stmt.body if mode else stmt.orelse
        yield from _aws_mode_statements(branch)
        if mode and _terminates(stmt.body):
            return


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


Class = tuple[str, ast.ClassDef]  # (module, class node)
TASK_HANDLER = ("autobert.workflow.tasks", "task_handler")  # a task's Lambda handler over its registry entry
PROPERTY_DECORATORS = {"property", "cached_property", "functools.cached_property"}


class _Walker:
    def __init__(self, handler_module: str):
        self.modules = code_base()
        self.seen_funcs: set[tuple[str, int]] = set()
        self.seen_modules: set[str] = set()
        self.classes: dict[tuple[str, str], ast.ClassDef] = {}
        self.method_names: set[str] = set()
        self.typed_uses: set[tuple[tuple[str, str], str]] = set()  # ((module, class), member) used on that class
        self.attr_nodes: list[ast.Attribute] = []
        self.calls: list[ast.Call] = []
        self.layout_refs: set[str] = set()
        self.usage = Usage(handler_module)
        # (module, node, enclosing class, enclosing function)
        self.queue: list[tuple[str, ast.AST, ast.ClassDef | None, ast.AST | None]] = []
        self.current = handler_module
        self.via: dict[str, str] = {}  # reached function -> the function that reached it (why a call is "used")
        self.visit_module(handler_module)
        # Every function the handler module defines: powertools' routes and exception handlers are registered by
        # decorators and called by the resolver, not by name.
        for fn in self.modules[handler_module].functions.values():
            self.reach(handler_module, fn)

    # ------------------------------------------------------------------------------------------- name resolution
    def as_module(self, module: str, node: ast.AST) -> str | None:
        """The qualified module a (dotted) name in ``module`` denotes, if it denotes one of ours."""
        dotted = _dotted(node)
        if not dotted:
            return None
        head, *rest = dotted.split(".")
        entry = self.modules[module].names.get(head)
        if not entry:
            return None
        kind, target = entry
        candidate = ".".join([target, *rest])
        return candidate if candidate in self.modules or kind == "module" else None

    def symbol(self, module: str, node: ast.AST):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a string annotation
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(node, ast.Name):
            mod = self.modules[module]
            if node.id in mod.functions:
                return ("function", module, mod.functions[node.id])
            if node.id in mod.classes:
                return ("class", module, mod.classes[node.id])
            entry = mod.names.get(node.id)
            return resolve_symbol(entry[1]) if entry else None
        if isinstance(node, ast.Attribute):
            owner = self.as_module(module, node.value)
            if owner:
                return resolve_symbol(f"{owner}.{node.attr}")
        return None

    def mro(self, cls: Class) -> list[Class]:
        out, todo = [], [cls]
        while todo:
            module, node = todo.pop(0)
            if (module, node.name) in [(m, n.name) for m, n in out]:
                continue
            out.append((module, node))
            for base in node.bases:
                target = self.symbol(module, base)
                if target and target[0] == "class":
                    todo.append((target[1], target[2]))
        return out

    def member(self, cls: Class, name: str) -> tuple[str, ast.ClassDef, ast.AST] | None:
        for module, node in self.mro(cls):
            for stmt in node.body:
                if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == name:
                    return module, node, stmt
        return None

    # ------------------------------------------------------------------------------------------ receiver types
    def types_of(self, module: str, expr: ast.AST, cls: ast.ClassDef | None, func: ast.AST | None,
                 depth: int = 0) -> set[Class] | None:
        """The classes (of ours) an expression's value can be an instance of; None when not known."""
        if depth > 12:
            return None
        if isinstance(expr, ast.Name):
            if expr.id == "self" and cls is not None:
                return {(module, cls)}
            if func is not None and isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                args = func.args
                for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                    if arg.arg == expr.id:
                        if builtin_type(arg.annotation):
                            return set()  # known, and none of ours: e.g. ``exc: UnicodeDecodeError``
                        target = self.symbol(module, arg.annotation) if arg.annotation is not None else None
                        return {(target[1], target[2])} if target and target[0] == "class" else None
                caught = [h.type for h in ast.walk(func) if isinstance(h, ast.ExceptHandler) and h.name == expr.id]
                if caught and all(builtin_type(t) for t in caught):
                    return set()  # ``except UnicodeError as exc``: a builtin exception, none of our classes
                assigned = self.assignments(func, expr.id)
                if assigned:
                    out: set[Class] = set()
                    for value in assigned:
                        found = self.types_of(module, value, cls, func, depth + 1)
                        if found is None:
                            return None
                        out |= found
                    return out
            return None
        if isinstance(expr, ast.Attribute):
            bases = self.types_of(module, expr.value, cls, func, depth + 1)
            if not bases:
                return None
            out = set()
            for base in bases:
                found = self.member(base, expr.attr)
                if found is None or not self.is_property(found[2]):
                    return None
                result = self.returns(found[0], found[2], found[1], depth + 1)
                if result is None:
                    return None
                out |= result
            return out
        if isinstance(expr, ast.Call):
            target = self.symbol(module, expr.func)
            if target and target[0] == "class":
                return {(target[1], target[2])}
            if target and target[0] == "function":
                return self.returns(target[1], target[2], None, depth + 1)
            return None
        if isinstance(expr, ast.IfExp):
            mode = _aws_test(expr.test)
            if mode is not None:
                return self.types_of(module, expr.body if mode else expr.orelse, cls, func, depth + 1)
            left = self.types_of(module, expr.body, cls, func, depth + 1)
            right = self.types_of(module, expr.orelse, cls, func, depth + 1)
            return None if left is None or right is None else left | right
        return None

    @staticmethod
    def is_property(fn: ast.AST) -> bool:
        return any((_dotted(d) or "") in PROPERTY_DECORATORS for d in getattr(fn, "decorator_list", []))

    @staticmethod
    def assignments(func: ast.AST, name: str) -> list[ast.AST]:
        values = []
        for node in ast.walk(func):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == name:
                        values.append(node.value)
                    elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        values += [v for t, v in zip(target.elts, node.value.elts, strict=False)
                                   if isinstance(t, ast.Name) and t.id == name]
                    elif isinstance(target, ast.Tuple) and any(
                            isinstance(t, ast.Name) and t.id == name for t in target.elts):
                        values.append(ast.Constant(None))  # unpacked from something else: unknown
            elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and isinstance(node.target, ast.Name) and \
                    node.target.id == name and node.value is not None:
                values.append(node.value)
        return values

    def returns(self, module: str, fn: ast.AST, cls: ast.ClassDef | None, depth: int) -> set[Class] | None:
        out: set[Class] = set()
        returned = [n.value for n in aws_mode_walk(fn) if isinstance(n, ast.Return) and n.value is not None]
        if not returned:
            return None
        for value in returned:
            found = self.types_of(module, value, cls, fn, depth)
            if found is None:
                return None
            out |= found
        return out

    # --------------------------------------------------------------------------------------------- reaching code
    def visit_module(self, module: str) -> None:
        if module in self.seen_modules or module not in self.modules:
            return
        self.seen_modules.add(module)
        for stmt in self.modules[module].tree.body:
            if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.queue.append((module, stmt, None, None))

    def reach(self, module: str, node: ast.AST, cls: ast.ClassDef | None = None) -> None:
        key = (module, id(node))
        if key in self.seen_funcs:
            return
        self.seen_funcs.add(key)
        name = ".".join([module, *([cls.name] if cls else []), getattr(node, "name", "?")])
        self.usage.reached.add(name)
        self.via.setdefault(name, self.current)
        self.visit_module(module)
        self.queue.append((module, node, cls, node))

    def instantiate(self, module: str, cls: ast.ClassDef) -> None:
        if (module, cls.name) in self.classes:
            return
        self.classes[(module, cls.name)] = cls
        self.visit_module(module)
        for use in list(self.typed_uses):
            self.reach_typed_use(use, (module, cls))
        for stmt in cls.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                if stmt.name.startswith("__") or stmt.name in self.method_names:
                    self.reach(module, stmt, cls)
            else:
                self.queue.append((module, stmt, cls, None))
        for base in cls.bases:  # methods inherited from our own classes
            target = self.symbol(module, base)
            if target and target[0] == "class":
                self.instantiate(target[1], target[2])

    def use_name(self, name: str) -> None:
        """``obj.name`` on an object of unknown class: the member ``name`` of every instantiated class."""
        if name in self.method_names:
            return
        self.method_names.add(name)
        for (module, _), cls in list(self.classes.items()):
            for stmt in cls.body:
                if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == name:
                    self.reach(module, stmt, cls)

    def use_member(self, module: str, receiver: ast.AST, name: str, cls, func) -> None:
        """``receiver.name``: when the receiver's classes are known, the member ``name`` of each of them and of each
        instantiated subclass (a port's method runs as its adapter's); otherwise ``use_name``."""
        types = self.types_of(module, receiver, cls, func)
        if types == set():
            return  # a value of a builtin type: its attributes are no code of ours
        if not types or not all(self.member(t, name) for t in types):
            self.use_name(name)
            return
        for t in types:
            key = ((t[0], t[1].name), name)
            if key not in self.typed_uses:
                self.typed_uses.add(key)
                for (m, _), c in list(self.classes.items()):
                    self.reach_typed_use(key, (m, c))

    def reach_typed_use(self, use: tuple[tuple[str, str], str], cls: Class) -> None:
        (base, name) = use
        if base in [(m, c.name) for m, c in self.mro(cls)]:
            found = self.member(cls, name)
            if found:
                self.reach(found[0], found[2], found[1])

    def run(self) -> Usage:
        while self.queue:
            module, node, cls, func = self.queue.pop()
            self.current = ".".join([module, *([cls.name] if cls else []), getattr(node, "name", "<module>")])
            for sub in aws_mode_walk(node):
                self.visit(module, sub, cls, func)
        self.finish()
        self.usage.via = self.via
        return self.usage

    def visit(self, module: str, node: ast.AST, cls, func) -> None:
        if isinstance(node, ast.Name | ast.Attribute):
            target = self.symbol(module, node)
            if target:
                if target[0] == "function":
                    self.reach(target[1], target[2])
                elif target[0] == "class":
                    self.instantiate(target[1], target[2])
                elif target[0] == "module":
                    self.visit_module(target[1])
                if target[0] != "module" and target[1] == "autobert.layout":
                    self.layout_refs.add(target[2].name)
            elif isinstance(node, ast.Attribute) and not self.as_module(module, node.value):
                self.use_member(module, node.value, node.attr, cls, func)
                self.attr_nodes.append(node)
            if isinstance(node, ast.Attribute) and self.as_module(module, node.value) == "autobert.layout":
                self.layout_refs.add(node.attr)
        elif isinstance(node, ast.Call):
            self.calls.append(node)
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in ("getattr", "hasattr") and len(node.args) >= 2 and isinstance(
                    node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                self.use_member(module, node.args[0], node.args[1].value, cls, func)
            if (isinstance(fn, ast.Attribute) and fn.attr == "client" or isinstance(fn, ast.Name)
                    and fn.id == "client") and node.args and isinstance(node.args[0], ast.Constant):
                self.usage.services.add(node.args[0].value)
            self.reach_task_step(module, node)
            for kw in node.keywords:
                if kw.arg == "Tags":
                    self.usage.sends_tags = True
                if kw.arg == "AutoRollbackConfiguration":
                    self.usage.sends_auto_rollback = True
        elif isinstance(node, ast.Dict | ast.Subscript):
            keys = node.keys if isinstance(node, ast.Dict) else [node.slice]
            for key in keys:
                if isinstance(key, ast.Constant) and key.value == "Tags":
                    self.usage.sends_tags = True
                if isinstance(key, ast.Constant) and key.value == "AutoRollbackConfiguration":
                    self.usage.sends_auto_rollback = True

    def reach_task_step(self, module: str, call: ast.Call) -> None:
        """``task_handler("MergeData", ...)`` (a task's Lambda shell) reaches the step function the task registry
        names for that task: the registry imports it by name, which no call graph follows."""
        target = self.symbol(module, call.func)
        if not (target and target[0] == "function" and (target[1], target[2].name) == TASK_HANDLER
                and call.args and isinstance(call.args[0], ast.Constant)):
            return
        from autobert.workflow.tasks import TASKS

        task = TASKS[call.args[0].value]
        step = resolve_symbol(f"{task.module}.{task.function}")
        if not step or step[0] != "function":
            raise AssertionError(f"{module}: task {task.name}'s step {task.module}.{task.function} is no function")
        self.reach(step[1], step[2])

    def finish(self) -> None:
        usage = self.usage
        by_name: dict[str, set[tuple[str, str]]] = {}
        for service in usage.services:
            for method, op in operations(service).items():
                by_name.setdefault(method, set()).add((service, op))
        for node in self.attr_nodes:
            if node.attr in by_name:
                found = by_name[node.attr]
                if len(found) > 1:
                    raise AssertionError(f"{usage.handler}: {node.attr} is an operation of several clients {found}")
                usage.calls |= found
        for call in self.calls:
            fn = call.func
            if isinstance(fn, ast.Attribute) and fn.attr in ("get_paginator", "get_waiter") and call.args and \
                    isinstance(call.args[0], ast.Constant):
                name = call.args[0].value
                for service in usage.services:
                    if fn.attr == "get_paginator" and name in operations(service):
                        usage.calls.add((service, operations(service)[name]))
                    elif fn.attr == "get_waiter" and name in (_botocore().get_waiter_model(service).waiter_names
                                                              if _has_waiters(service) else ()):
                        usage.calls.add((service, waiter_operation(service, name)))
        usage.prefixes = {layout_prefix(name) for name in self.layout_refs} - {None}


def _has_waiters(service: str) -> bool:
    try:
        _botocore().get_waiter_model(service)
    except Exception:  # noqa: BLE001 (botocore raises DataNotFoundError for a service without waiters)
        return False
    return True


def layout_prefix(name: str) -> str | None:
    """The first path segment of a ``autobert.layout`` constant, or of what a layout helper returns."""
    from autobert import layout

    value = getattr(layout, name, None)
    if callable(value):
        args = [date(2026, 1, 1) if p.annotation in ("date", date) else 1 if p.annotation in ("int", int) else "x"
                for p in inspect.signature(value).parameters.values() if p.default is inspect.Parameter.empty]
        value = value(*args)
    if isinstance(value, str) and "/" in value:
        return value.split("/", 1)[0]
    return None


@cache
def usage_of(handler_module: str) -> Usage:
    """What ``functions/<name>.py`` can call, e.g. ``usage_of("functions.predict")``."""
    return _Walker(handler_module).run()
