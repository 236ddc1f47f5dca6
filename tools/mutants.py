"""The mutants of tools/mutate.py: hand-made bugs of the kinds real code gets.

Owns the operators (a comparison off its boundary, an off-by-one, a dropped
`sample_weight`, a copy turned into an alias, a missing reset, a wrong reduction,
swapped arguments), where they may apply (not in docstrings, error messages or
warnings), and turning a file into its mutants. Running tests against them belongs
to tools/mutate.py.
"""

import ast
import copy
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class Mutant:
    """One planted bug: `original` (source of the node) becomes `replacement` at `path:line`."""

    path: str
    line: int
    operator: str
    function: str
    original: str
    replacement: str
    start: int  # byte offsets of the replaced source segment
    end: int

    @property
    def key(self) -> str:
        """Stable across line moves: how tools/equivalent_mutants.txt names a mutant."""
        where = f"{self.path}::{self.function}::{self.operator}"
        return f"{where}::{self.original} -> {self.replacement}"

    def describe(self) -> str:
        change = f"`{self.original}` -> `{self.replacement}`"
        return f"{self.path}:{self.line} [{self.operator}] {change} (in {self.function})"


@dataclasses.dataclass
class Site:
    """A node an operator may rewrite, with what encloses it."""

    node: ast.AST
    function: str


_RESET_NAMES = {
    "reset_state",
    "reset_states",
    "reset_metrics",
    "reset",
    "zero_grad",
    "zero_",
    "clear",
}
# Calls whose swapped arguments are no bug (commutative) or no plausible one (builtins
# taking a value and a type or a name: swapping them only raises).
_NOT_SWAPPED = {
    "max",
    "min",
    "maximum",
    "minimum",
    "add",
    "mul",
    "eq",
    "equal",
    "ne",
    "isclose",
    "allclose",
    "logical_and",
    "logical_or",
    "hypot",
    "isinstance",
    "issubclass",
    "getattr",
    "setattr",
    "hasattr",
    "super",
    "zip",
    "range",
    "enumerate",
    "map",
}
_BOUNDARY = {ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Lt: ast.LtE, ast.LtE: ast.Lt}
_REDUCTIONS = {"mean": "sum", "sum": "mean", "nanmean": "nansum", "nansum": "nanmean"}


def _call_name(node: ast.AST) -> Optional[str]:
    if not isinstance(node, ast.Call):
        return None
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return node.func.id if isinstance(node.func, ast.Name) else None


def _int_constant(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


def _edited(node: ast.AST, edit: Callable[[ast.AST], Optional[ast.AST]]) -> Optional[ast.AST]:
    """Applies `edit` to a deep copy of `node` (the tree itself is never changed)."""
    return edit(copy.deepcopy(node))


def op_boundary(node: ast.AST) -> Iterator[ast.AST]:
    """`>` <-> `>=`, `<` <-> `<=`: the comparison off its boundary."""
    if isinstance(node, ast.Compare):
        for index, op in enumerate(node.ops):
            if type(op) in _BOUNDARY:
                mutant = copy.deepcopy(node)
                mutant.ops[index] = _BOUNDARY[type(op)]()
                yield mutant


def op_off_by_one(node: ast.AST) -> Iterator[ast.AST]:
    """`x + 1` / `x - 1` lose their 1; `range(n)` stops one early; int bounds move by one."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        if _int_constant(node.right) and node.right.value == 1:
            yield copy.deepcopy(node.left)
    if _call_name(node) == "range" and node.args and not node.keywords:
        mutant = copy.deepcopy(node)
        stop = mutant.args[min(1, len(mutant.args) - 1)]
        mutant.args[min(1, len(mutant.args) - 1)] = ast.BinOp(stop, ast.Sub(), ast.Constant(1))
        yield mutant
    single = isinstance(node, ast.Compare) and len(node.comparators) == 1
    if single and _int_constant(node.comparators[0]):
        mutant = copy.deepcopy(node)
        mutant.comparators[0] = ast.Constant(node.comparators[0].value + 1)
        yield mutant
    if isinstance(node, ast.Slice):
        for bound in ("lower", "upper"):
            if _int_constant(getattr(node, bound)):
                mutant = copy.deepcopy(node)
                setattr(mutant, bound, ast.Constant(getattr(node, bound).value + 1))
                yield mutant


def op_drop_sample_weight(node: ast.AST) -> Iterator[ast.AST]:
    """A call that forgets to pass `sample_weight` on."""
    if not isinstance(node, ast.Call):
        return
    for index, keyword in enumerate(node.keywords):
        if keyword.arg == "sample_weight" and not (
            isinstance(keyword.value, ast.Constant) and keyword.value.value is None
        ):
            mutant = copy.deepcopy(node)
            del mutant.keywords[index]
            yield mutant
    if node.args and isinstance(node.args[-1], ast.Name) and node.args[-1].id == "sample_weight":
        mutant = copy.deepcopy(node)
        del mutant.args[-1]
        yield mutant


def op_copy_to_alias(node: ast.AST) -> Iterator[ast.AST]:
    """A copy that becomes an alias: `.clone()`, `.copy()`, `copy.copy`, `dict(x)`, `np.array`,
    `copy=True`."""
    if isinstance(node, ast.Call):
        yield from _copy_calls(node)
        yield from _copy_keywords(node)


def _is_name(node: ast.AST, *names: str) -> bool:
    return isinstance(node, ast.Name) and node.id in names


def _copy_calls(node: ast.Call) -> Iterator[ast.AST]:
    name, func = _call_name(node), node.func
    method = isinstance(func, ast.Attribute)
    if name in ("clone", "copy") and method and not node.args and not _is_name(func.value, "copy"):
        yield copy.deepcopy(func.value)
    if name in ("copy", "deepcopy") and method and _is_name(func.value, "copy") and node.args:
        yield copy.deepcopy(node.args[0])
    if _is_name(func, "dict", "list") and len(node.args) == 1 and not node.keywords:
        yield copy.deepcopy(node.args[0])
    if name == "array" and method and _is_name(func.value, "np", "numpy"):
        if not any(keyword.arg == "copy" for keyword in node.keywords):
            yield _edited(node, lambda n: _set_attr(n, "asarray"))


def _copy_keywords(node: ast.Call) -> Iterator[ast.AST]:
    for index, keyword in enumerate(node.keywords):
        value = keyword.value
        if keyword.arg == "copy" and isinstance(value, ast.Constant) and value.value is True:
            mutant = copy.deepcopy(node)
            mutant.keywords[index].value = ast.Constant(False)
            yield mutant


def _set_attr(node: ast.Call, attr: str) -> ast.Call:
    node.func.attr = attr
    return node


def op_drop_reset(node: ast.AST) -> Iterator[ast.AST]:
    """A reset that never happens: `metric.reset_state()`, `optimizer.zero_grad()`, `d.clear()`."""
    if isinstance(node, ast.Expr) and _call_name(node.value) in _RESET_NAMES:
        yield ast.Pass()


def op_reduction(node: ast.AST) -> Iterator[ast.AST]:
    """`mean` <-> `sum`, and a division that loses its divisor."""
    name = _call_name(node)
    if name in _REDUCTIONS and isinstance(node.func, ast.Attribute):
        yield _edited(node, lambda n: _set_attr(n, _REDUCTIONS[name]))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        if not isinstance(node.right, ast.Constant):
            yield copy.deepcopy(node.left)


def op_swap_args(node: ast.AST) -> Iterator[ast.AST]:
    """The first two positional arguments, both plain names, in the wrong order."""
    if not isinstance(node, ast.Call) or len(node.args) < 2 or _call_name(node) in _NOT_SWAPPED:
        return
    first, second = node.args[0], node.args[1]
    if isinstance(first, ast.Name) and isinstance(second, ast.Name) and first.id != second.id:
        mutant = copy.deepcopy(node)
        mutant.args[0], mutant.args[1] = mutant.args[1], mutant.args[0]
        yield mutant


OPERATORS = {
    "boundary": op_boundary,
    "off_by_one": op_off_by_one,
    "drop_sample_weight": op_drop_sample_weight,
    "copy_to_alias": op_copy_to_alias,
    "drop_reset": op_drop_reset,
    "reduction": op_reduction,
    "swap_args": op_swap_args,
}


def _is_docstring(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _skipped(node: ast.AST) -> bool:
    """Error messages and warnings: a mutant there changes only the text people read."""
    return isinstance(node, (ast.JoinedStr, ast.Raise)) or _call_name(node) == "warn"


def iter_sites(tree: ast.AST, function: str = "<module>") -> Iterator[Site]:
    """Every node outside docstrings, error messages and warnings, with its function's name."""
    for child in ast.iter_child_nodes(tree):
        if _is_docstring(child) or _skipped(child):
            continue
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            inner = child.name if function == "<module>" else f"{function}.{child.name}"
            yield from iter_sites(child, inner)
            continue
        yield Site(child, function)
        yield from iter_sites(child, function)


def _line_offsets(source: bytes) -> list[int]:
    offsets, position = [0], 0
    for line in source.splitlines(keepends=True):
        position += len(line)
        offsets.append(position)
    return offsets


def _replacement_text(node: ast.AST, mutant_node: ast.AST) -> str:
    if isinstance(mutant_node, ast.Pass):
        return "pass"
    text = ast.unparse(mutant_node)
    return text if isinstance(node, ast.Slice) else f"({text})"


def mutants_of(path: Path, operators: dict) -> list[Mutant]:
    """All mutants of one file, in source order, each checked to compile and to differ."""
    source = path.read_bytes()
    tree = ast.parse(source)
    offsets, relative = _line_offsets(source), path.relative_to(ROOT).as_posix()
    found, seen = [], set()
    for site in iter_sites(tree):
        node = site.node
        if not hasattr(node, "end_lineno") or node.end_lineno is None:
            continue
        start = offsets[node.lineno - 1] + node.col_offset
        end = offsets[node.end_lineno - 1] + node.end_col_offset
        for name, operator in operators.items():
            for mutant_node in operator(node):
                mutant = _make_mutant(relative, site, name, node, mutant_node, start, end)
                if (mutant.start, mutant.replacement) not in seen and _valid(source, tree, mutant):
                    seen.add((mutant.start, mutant.replacement))
                    found.append(mutant)
    return found


def _make_mutant(path, site, operator, node, mutant_node, start, end) -> Mutant:
    replacement = _replacement_text(node, ast.fix_missing_locations(mutant_node))
    original = " ".join(ast.unparse(node).split())
    return Mutant(
        path,
        node.lineno,
        operator,
        site.function,
        original,
        " ".join(replacement.split()),
        start,
        end,
    )


def apply(source: bytes, mutant: Mutant) -> bytes:
    return source[: mutant.start] + mutant.replacement.encode() + source[mutant.end :]


def _valid(source: bytes, tree: ast.AST, mutant: Mutant) -> bool:
    try:
        mutated = ast.parse(apply(source, mutant))
    except SyntaxError:
        return False
    return ast.dump(mutated) != ast.dump(tree)


def python_files(targets) -> list[Path]:
    files = []
    for target in targets:
        path = (ROOT / target).resolve()
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return [f for f in files if "__pycache__" not in f.parts]
