"""The seams between torchfit's rooms: who imports whom, and whose private names are whose.

A package imports only what sits below it in `LAYERS`, at the top of the module
(an import moved into a function to dodge a circle is a circle still); an object's
private names are its own. These tests read the source with `ast` (nothing is
imported), so a broken seam fails here with the file and line, not as an
`ImportError` somewhere else. `tools/seams.py` measures the same things on any tree.
"""

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, Optional

ROOT = Path(__file__).resolve().parent.parent

#: The rooms of torchfit from the bottom up: each may import the ones before it,
#: never one after it. A room is a top-level module or a package (with all its
#: modules); inside a package, modules may import each other but not in a circle.
LAYERS = (
    "torchfit.tree",  # nested structures
    "torchfit.logs",  # device values to host floats
    "torchfit.utils",  # files, progress bar, Sequence, summary: no torchfit room above
    "torchfit.layers",  # add_loss / add_metric inside a forward
    "torchfit.losses",
    "torchfit.metrics",
    "torchfit.optimizers",
    "torchfit.mixed_precision",  # dtype policies; exports LossScaleOptimizer, as Keras does
    "torchfit.outputs",  # which parts of a model's return value are outputs
    "torchfit.compiled",  # what compile() means per output
    "torchfit.data",  # adapters and epochs of batches
    "torchfit.distribution",  # the model's distribution: one process, or torch.distributed
    "torchfit.callbacks",
    "torchfit.loops",  # event order of fit/evaluate/predict
    "torchfit.models",  # Model: state, steps and verbs
    "torchfit.datasets",
    "torchfit",  # the package's public names
)

#: The modules whose classes make up `torchfit.Model` (it and its mixins), where its private
#: names are defined. They are used only inside Model's room, `torchfit.models`; the other
#: rooms use the public names the Model docstring lists for them.
MODEL_MODULES = (
    "torchfit.models.model",
    "torchfit.models.trainer",
    "torchfit.models.metrics_tracking",
)


class Import(NamedTuple):
    source: str  # the importing module, e.g. "torchfit.loops"
    target: str  # the imported torchfit module (a package means its __init__)
    path: str  # the importing file, relative to the root
    line: int
    in_function: bool


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the torchfit package under `root`, by dotted name."""
    files = {}
    for path in sorted((root / "torchfit").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def _resolve(name: str, modules: dict) -> Optional[str]:
    """The module `name` loads: itself, else its package (an attribute imported from it)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _package_of(source: str, path: Path) -> str:
    return source if path.name == "__init__.py" else source.rpartition(".")[0]


def _targets(node: ast.AST, source: str, path: Path, modules: dict) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "torchfit":
                yield _resolve(alias.name, modules)
        return
    base = node.module or ""
    if node.level:
        package = _package_of(source, path)
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    if base.split(".")[0] != "torchfit":
        return
    for alias in node.names:
        yield _resolve(f"{base}.{alias.name}", modules)


def imports(root: Path = ROOT) -> list[Import]:
    """Every import of a torchfit module by a torchfit module, with where it stands."""
    modules = module_files(root)
    found = []
    for source, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        functions = [
            n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(node, source, path, modules):
                if target is not None and target != source:
                    relative = path.relative_to(root).as_posix()
                    found.append(Import(source, target, relative, node.lineno, id(node) in inside))
    return found


def cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    graph: dict[str, set] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in sorted(graph[node]):
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def room_of(module: str) -> str:
    """The entry of `LAYERS` a module belongs to: its top-level module or package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def upward(edges: list[Import]) -> list[Import]:
    """The imports of a room above the importer's own."""
    rank = {room: position for position, room in enumerate(LAYERS)}
    return [e for e in edges if rank[room_of(e.target)] > rank[room_of(e.source)]]


def private_reaches(path: Path, names: Optional[set] = None) -> list[tuple[int, str]]:
    """`(line, name)` of each `obj._name` read or written in `path` on another object.

    Only `self`, `cls` and the classes the module defines are its own objects: a
    private name reached on anything else (an argument, an attribute, another
    module) is a seam crossed. With `names`, only those names count. String forms
    (`getattr(obj, "_name")`, `vars(obj)["_name"]`, `vars(obj).pop("_name")`) count too.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    own = {"self", "cls"} | {n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}

    def counts(name: str) -> bool:
        private = name.startswith("_") and not name.startswith("__")
        return private and (names is None or name in names)

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and counts(node.attr):
            target = node.value
            if not (isinstance(target, ast.Name) and target.id in own):
                found.append((node.lineno, node.attr))
        elif isinstance(node, (ast.Call, ast.Subscript)):
            for text in _string_reaches(node):
                if counts(text):
                    found.append((node.lineno, text))
    return sorted(found)


def _string_reaches(node: ast.AST) -> Iterator[str]:
    """Names reached by string: getattr/setattr/hasattr/delattr, vars(obj)[...], vars(obj).pop."""
    if isinstance(node, ast.Subscript):
        if _is_vars(node.value) and isinstance(node.slice, ast.Constant):
            yield str(node.slice.value)
        return
    function, arguments = node.func, node.args
    if isinstance(function, ast.Attribute) and function.attr in ("get", "pop"):
        if _is_vars(function.value) and arguments and isinstance(arguments[0], ast.Constant):
            yield str(arguments[0].value)
        return
    name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", "")
    if name in ("getattr", "setattr", "hasattr", "delattr", "__setattr__") and len(arguments) > 1:
        if isinstance(arguments[1], ast.Constant):
            yield str(arguments[1].value)


def _is_vars(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "vars":
        return True
    return isinstance(node, ast.Attribute) and node.attr == "__dict__"


def model_private_names(root: Path = ROOT) -> set:
    """The private names `torchfit.Model` defines: methods, class attributes, `self._x`."""
    modules = module_files(root)
    names = set()
    for module in MODEL_MODULES:
        tree = ast.parse(modules[module].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                        targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                        names.update(t.id for t in targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if isinstance(node.value, ast.Name) and node.value.id == "self":
                    names.add(node.attr)
    return {name for name in names if name.startswith("_") and not name.startswith("__")}


# ------------------------------------------------------------------ the tests


def test_the_layers_name_every_room():
    rooms = {room_of(module) for module in module_files()}
    assert rooms <= set(LAYERS), f"rooms missing from LAYERS: {sorted(rooms - set(LAYERS))}"


def test_no_import_circle():
    found = cycles(imports())
    assert not found, "modules that import each other in a circle: " + "; ".join(
        " <-> ".join(group) for group in found
    )


def test_no_room_imports_a_room_above_it():
    found = upward(imports())
    assert not found, "imports of a room above: " + "; ".join(
        f"{e.path}:{e.line} imports {e.target}" for e in found
    )


def test_torchfit_imports_stand_at_the_top_of_their_module():
    found = [e for e in imports() if e.in_function]
    assert not found, "torchfit imports inside functions: " + "; ".join(
        f"{e.path}:{e.line} imports {e.target}" for e in found
    )


def test_distribution_reaches_no_private_name_of_another_modules_object():
    found = [
        f"{path.relative_to(ROOT)}:{line} reaches `{name}`"
        for path in sorted((ROOT / "torchfit" / "distribution").glob("*.py"))
        for line, name in private_reaches(path)
    ]
    assert not found, "; ".join(found)


def test_no_room_but_models_uses_the_private_names_of_model():
    names = model_private_names()
    found = [
        f"{path.relative_to(ROOT)}:{line} uses Model's `{name}`"
        for module, path in module_files().items()
        if room_of(module) != "torchfit.models"
        for line, name in private_reaches(path, names)
    ]
    assert not found, "; ".join(found)


def test_the_checks_see_a_circle_an_upward_import_and_a_private_reach(tmp_path):
    package = tmp_path / "torchfit"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tree.py").write_text("from torchfit import loops\n")
    (package / "loops.py").write_text("def f():\n    from torchfit.tree import x\n")
    (package / "models" / "__init__.py").write_text("")
    (package / "models" / "model.py").write_text("class Model:\n    _secret = 1\n")
    (package / "distribution.py").write_text("def f(model):\n    return model._secret\n")
    edges = imports(tmp_path)
    assert cycles(edges) == [["torchfit.loops", "torchfit.tree"]]
    assert [(e.source, e.target) for e in upward(edges)] == [("torchfit.tree", "torchfit.loops")]
    assert [e.line for e in edges if e.in_function] == [2]
    assert private_reaches(package / "distribution.py") == [(2, "_secret")]
