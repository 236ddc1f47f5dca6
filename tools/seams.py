"""Measures the seams between torchfit's rooms, on this tree or any other checkout.

Owns the numbers of issue 12: import circles, imports inside functions that only
dodge a circle, upward imports between rooms, the private names of `Model` used
elsewhere, "is this a distributed run?" mentions and branches in the core, decisions
made by `__name__`, private reaches from `distribution/` into other objects, the
known duplicates, and lines over 100 characters. The layering and the import walk
are the contract in tests/test_seams.py, loaded from this checkout whatever
`--root` measures, so a "before" and an "after" are measured alike.

Not run in CI and not collected by pytest. From the repository root:

    python tools/seams.py                       # this tree
    python tools/seams.py --root /tmp/before    # another tree (`git archive REV | tar -x -C`)
    python tools/seams.py --json seams.json     # every number, and what it counted
"""

import argparse
import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
_SPEC = importlib.util.spec_from_file_location("_torchfit_seams", HERE / "tests" / "test_seams.py")
contract = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(contract)

CORE = (
    "torchfit/models",
    "torchfit/loops.py",
    "torchfit/compiled.py",
    "torchfit/data",
    "torchfit/callbacks",
)
# Words that ask "is there a distributed run?" (or reach the machinery that answers it).
DISTRIBUTED = re.compile(
    r"\b_distribution\b|distribution_lib|_ddp_call|_loss_weight|torch\.distributed|"
    r"\bdistributed\.|DistributedDataParallel|get_rank|_is_writer|rank_callbacks"
)
# An `if` that asks whether the run is distributed, and one that asks whether this
# process is rank 0 (a flag the distribution declares: the seam working as meant).
DISTRIBUTED_WORDS = {
    "_distribution",
    "_ddp_call",
    "_loss_weight",
    "distributed",
    "get_rank",
    "world_size",
    "DistributedDataParallel",
}
CHIEF_WORDS = {"is_chief", "_is_writer", "rank"}
# The duplicates issue 12 lists, as patterns over torchfit/ outside metrics/, losses/ and
# optimizers/ (one match = one copy).
DUPLICATES = {
    "_weights_module copies": r"def (?:_weights_module|_state_module|weights_module)\(",
    "batch parsers (same error)": r"\"A batch must be `x`, `\(x,\)`, `\(x, y\)`",
    "positive-int checks": r"isinstance\((\w+), bool\) or not isinstance\(\1, int\)",
    "verbose='auto' resolutions": r"verbose == \"auto\"",
    "shuffle-ignored warnings": r"was passed, but will be ignored since",
    "BatchLogs dict wrappers": r"BatchLogs\(lambda: logs\)",
    "def _epoch_logs (colliding)": r"^def _epoch_logs\(",
}
COLLIDING_FILES = ("torchfit/data/data_utils.py", "torchfit/utils/data_utils.py")
LONG_LINE_DIRS = ("torchfit", "tests", "compat", "bench", "tools", "examples")


def _files(root: Path, targets) -> list:
    found = []
    for target in targets:
        path = root / target
        found.extend(
            sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
        )
    return found


def import_numbers(root: Path) -> dict:
    edges = contract.imports(root)
    groups = contract.cycles(edges)
    graph: dict = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    in_function = [e for e in edges if e.in_function]
    dodging = [e for e in in_function if reaches(e.target, e.source)]
    up = contract.upward(edges)
    return {
        "files in circles": sum(len(group) for group in groups),
        "circles": [" <-> ".join(group) for group in groups],
        "torchfit imports inside functions": len(in_function),
        "... of which only dodge a circle": len(dodging),
        "dodging imports": [f"{e.path}:{e.line} -> {e.target}" for e in dodging],
        "upward imports": len(up),
        "upward": [f"{e.path}:{e.line} -> {e.target}" for e in up],
    }


def _writes(path: Path, names: set) -> list:
    """`(line, name)` of each private name of Model written (or deleted) on another object."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in names:
            owner = node.value
            is_self = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
            if isinstance(node.ctx, (ast.Store, ast.Del)) and not is_self:
                found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            second = node.args[1]
            if name in ("setattr", "__setattr__") and isinstance(second, ast.Constant):
                if second.value in names:
                    found.append((node.lineno, second.value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            first = node.args[0]
            if node.func.attr == "pop" and contract._is_vars(node.func.value):
                if isinstance(first, ast.Constant) and first.value in names:
                    found.append((node.lineno, first.value))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            key = node.slice
            if contract._is_vars(node.value) and isinstance(key, ast.Constant):
                if key.value in names:
                    found.append((node.lineno, key.value))
    return found


def model_numbers(root: Path) -> dict:
    names = contract.model_private_names(root)
    used, written, modules, rooms = {}, set(), set(), set()
    for module, path in contract.module_files(root).items():
        if module in contract.MODEL_MODULES:
            continue
        for line, name in contract.private_reaches(path, names):
            used.setdefault(name, []).append(f"{path.relative_to(root)}:{line}")
            modules.add(module)
            if contract.room_of(module) != "torchfit.models":
                rooms.add(name)
        written.update(name for _, name in _writes(path, names))
    return {
        "Model private names used elsewhere": len(used),
        "... by modules": len(modules),
        "... written from outside": len(written),
        "... used outside torchfit/models/": len(rooms),
        "names": {name: places for name, places in sorted(used.items())},
        "written": sorted(written),
    }


def _branch_tests(tree: ast.AST, words_asked: set) -> list:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.If, ast.IfExp, ast.While)):
            words = {n.attr for n in ast.walk(node.test) if isinstance(n, ast.Attribute)}
            words |= {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            words |= {
                n.value
                for n in ast.walk(node.test)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
            if words & words_asked:
                found.append(node.lineno)
    return found


def distribution_numbers(root: Path) -> dict:
    mentions, branches, chief, files = [], [], [], set()
    for path in _files(root, CORE):
        relative = path.relative_to(root).as_posix()
        for number, line in enumerate(_code(path).splitlines(), 1):
            if DISTRIBUTED.search(line.split("#")[0]):
                mentions.append(f"{relative}:{number}")
                files.add(relative)
        tree = ast.parse(path.read_text())
        branches += [f"{relative}:{n}" for n in _branch_tests(tree, DISTRIBUTED_WORDS)]
        chief += [f"{relative}:{n}" for n in _branch_tests(tree, CHIEF_WORDS)]
    reaches = []
    for path in _files(root, ["torchfit/distribution"]):
        reaches += [
            (f"{path.relative_to(root)}:{line}", name)
            for line, name in contract.private_reaches(path)
        ]
    names = []
    for path in _files(root, ["torchfit"]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Attribute) and o.attr == "__name__" for o in operands):
                    names.append(f"{path.relative_to(root)}:{node.lineno}")
    return {
        "distributed mentions in core": len(mentions),
        "... in core files": len(files),
        "distributed branches in core": len(branches),
        "rank-0 decisions in core": len(chief),
        "mentions": mentions,
        "branches": branches,
        "rank-0 decisions": chief,
        "__name__ decisions": len(names),
        "name decisions": names,
        "private reaches from distribution/": len(reaches),
        "... distinct private names": len({name for _, name in reaches}),
        "reaches": [f"{where} {name}" for where, name in reaches],
    }


def _code(path: Path) -> str:
    """The source of `path` with its docstrings blanked: what runs, not what is said."""
    source = path.read_text()
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            value = body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                for number in range(body[0].lineno - 1, body[0].end_lineno):
                    lines[number] = ""
    return "\n".join(lines)


def _batch_size_helpers(path: Path) -> int:
    """Functions that return the first dimension of something: a batch size, a sample count."""
    count = 0
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            returns = [n for n in ast.walk(node) if isinstance(n, ast.Return) and n.value]
            if any("shape[0]" in ast.unparse(n.value) for n in returns):
                count += 1
    return count


def duplicate_numbers(root: Path) -> dict:
    counts = {}
    skipped = ("torchfit/metrics/", "torchfit/losses/", "torchfit/optimizers/")
    texts = {
        path: _code(path)
        for path in _files(root, ["torchfit"])
        if not path.relative_to(root).as_posix().startswith(skipped)
    }
    for label, pattern in DUPLICATES.items():
        regex = re.compile(pattern, re.MULTILINE)
        counts[label] = sum(len(regex.findall(text)) for text in texts.values())
    counts["batch-size helpers"] = sum(_batch_size_helpers(path) for path in texts)
    counts["colliding data_utils.py files"] = sum((root / p).exists() for p in COLLIDING_FILES)
    return counts


def long_line_numbers(root: Path) -> dict:
    lengths = [
        len(line) for path in _files(root, LONG_LINE_DIRS) for line in path.read_text().splitlines()
    ]
    package = [
        len(line) for path in _files(root, ["torchfit"]) for line in path.read_text().splitlines()
    ]
    return {
        "lines over 100": sum(n > 100 for n in lengths),
        "longest line": max(lengths, default=0),
        "... in torchfit/": sum(n > 100 for n in package),
        "... longest in torchfit/": max(package, default=0),
    }


def measure(root: Path) -> dict:
    return {
        "imports": import_numbers(root),
        "model": model_numbers(root),
        "distribution": distribution_numbers(root),
        "duplicates": duplicate_numbers(root),
        "lines": long_line_numbers(root),
    }


def _print(numbers: dict) -> None:
    for section, values in numbers.items():
        print(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, (int, float)):
                print(f"  {key}: {value}")
        for key in ("circles", "dodging imports", "upward", "written"):
            if values.get(key):
                print(f"  {key}: " + "; ".join(values[key]))
        if section == "model":
            print("  names: " + ", ".join(values["names"]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE, help="the checkout to measure")
    parser.add_argument("--json", type=Path, help="write every number and what it counted")
    args = parser.parse_args(argv)
    numbers = measure(args.root.resolve())
    _print(numbers)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
