"""Tools an agent can call: a registry of named functions from text to text.

Builtin tools (``builtin_tool(name, ...)``):

* ``calculator``: arithmetic on numbers (``+ - * / // % **``, parentheses, ``sqrt``, ``round``, ``min``, ...),
  evaluated from Python's syntax tree; no names, attributes or calls beyond those (``^`` is read as a power,
  ``x`` between numbers as a product, ``1,200`` as 1200);
* ``python``: a program run in the sandbox (``llmcycle.apps.sandbox``); its output is the observation;
* ``search``: the top passages of a retrieval index (``llmcycle.apps.retrieval``) for a query, numbered.

A user's own tool is any Python function taking one string: ``user_tool("mypkg.tools:lookup")`` or
``user_tool("path/to/tools.py:lookup")``; its docstring's first line describes it to the model.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from llmcycle.core.errors import ConfigError

MAX_OBSERVATION = 1500


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    fn: Callable[[str], Any]

    def __call__(self, text: str) -> str:
        """The observation: the function's result as text, or ``error: ...`` (a tool never stops the agent)."""
        try:
            result = self.fn(text)
        except Exception as exc:  # a tool's failure is an observation the model can react to
            return f"error: {type(exc).__name__}: {exc}"[:MAX_OBSERVATION]
        text = result if isinstance(result, str) else repr(result) if result is not None else "(no output)"
        return text if len(text) <= MAX_OBSERVATION else text[:MAX_OBSERVATION] + " ...(cut)"


class ToolRegistry:
    """Named tools; registering a name twice is an error."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools or []:
            self.register(t)

    def register(self, tool: Tool) -> Tool:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", tool.name):
            raise ConfigError(f"tool name {tool.name!r}: use letters, digits, '_' and '-'")
        key = tool.name.lower()
        if key in self._tools:
            raise ConfigError(f"tool {tool.name!r} is registered twice")
        self._tools[key] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name.strip().lower())

    @property
    def names(self) -> list[str]:
        return [t.name for t in self._tools.values()]

    def describe(self) -> str:
        """One line per tool for the prompt: ``name[input]: description``."""
        return "\n".join(f"{t.name}[input]: {t.description}" for t in self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)


# ---- calculator ---------------------------------------------------------------------------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "log": math.log, "log10": math.log10, "exp": math.exp, "sin": math.sin, "cos": math.cos,
    "tan": math.tan, "floor": math.floor, "ceil": math.ceil, "round": round, "abs": abs, "min": min, "max": max}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def calculate(expression: str) -> str:
    """The value of an arithmetic expression, as text (integers without a trailing .0)."""
    text = expression.strip().strip("`").strip()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,200 -> 1200
    text = re.sub(r"(?<=[\d)\s])[x×](?=[\s\d(])", "*", text).replace("^", "**").replace("÷", "/")
    if len(text) > 200:
        raise ValueError("expression longer than 200 characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None
    value = _eval(tree.body)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 100 or abs(left) > 1e6):
            raise ValueError("power too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS \
            and not node.keywords and len(node.args) <= 4:
        return _FUNCTIONS[node.func.id](*(_eval(a) for a in node.args))
    raise ValueError(f"not allowed in a calculation: {ast.unparse(node) if hasattr(ast, 'unparse') else node}")


# ---- the builtin tools -------------------------------------------------------------------------------

def calculator_tool() -> Tool:
    return Tool("calculator", "evaluates an arithmetic expression such as 12 * (7 + 3) / 4", calculate)


def python_tool(sandbox: Any) -> Tool:
    """Python run in ``sandbox`` (a ``Sandbox``); the observation is what it printed, or how it failed."""
    def run(code: str) -> str:
        code = code.strip().strip("`")
        if code.lower().startswith("python\n"):
            code = code[7:]
        result = sandbox.run(code)
        if result.ok:
            return result.stdout.strip() or "(printed nothing; use print)"
        return f"{result.status}: {result.message}"

    return Tool("python", "runs a short Python program (standard library only) and returns what it prints", run)


def search_tool(index: Any, k: int = 3, method: str = "hybrid", max_chars: int = 400) -> Tool:
    """The top ``k`` passages of ``index`` (a ``RetrievalIndex``) for the query, numbered, each cut to ``max_chars``."""
    def run(query: str) -> str:
        hits = index.search([query.strip()], k=k, method=method)[0]
        if not hits:
            return "no passages found"
        return "\n".join(f"[{h.rank}] ({h.chunk.label}) {_cut(h.chunk.text, max_chars)}" for h in hits)

    return Tool("search", "searches the document collection and returns the most relevant passages", run)


def _cut(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + " ..."


def user_tool(spec: str, name: str | None = None) -> Tool:
    """A tool from ``module:function`` or ``file.py:function``; the function takes the input string."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise ConfigError(f"tool {spec!r}: write module:function or path/to/file.py:function")
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise ConfigError(f"tool {spec!r}: no such file {path}")
        module_spec = importlib.util.spec_from_file_location(f"llmcycle_user_tool_{path.stem}", path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"tool {spec!r}: cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)  # the user's own code, run as they asked
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"tool {spec!r}: cannot import {target} ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"tool {spec!r}: {target} has no function {attr}")
    doc = (fn.__doc__ or "").strip().splitlines()
    return Tool(name or attr, doc[0] if doc else f"the user's function {attr}", fn)
