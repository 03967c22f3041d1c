"""The shape of plugin/: imports only downward (no cycle), and only plugin/vsphere/ speaks
pyVmomi. Read from the source with ``ast``; nothing is imported."""

import ast
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[2] / "plugin"


def module_name(path):
    parts = list(path.relative_to(PLUGIN.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """The names of the modules ``path`` imports (absolute; relative ones resolved)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def plugin_graph():
    """{module: set of plugin modules it imports}."""
    modules = {module_name(p): p for p in PLUGIN.rglob("*.py")}
    return {name: {m for m in imports(path) if m in modules and m not in (name, "plugin")}
            for name, path in modules.items()}


def find_cycle(graph):
    """One import cycle as a list of modules, or []."""
    state = {}

    def visit(node, trail):
        state[node] = "visiting"
        for target in sorted(graph[node]):
            if state.get(target) == "visiting":
                return trail[trail.index(target):] + [target]
            if target not in state:
                cycle = visit(target, trail + [target])
                if cycle:
                    return cycle
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [node])
            if cycle:
                return cycle
    return []


def room(module):
    """The module as a part of plugin/: a top-level module, or its sub-package as a whole."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_the_plugins_imports_have_no_cycle_between_modules():
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in plugin_graph().items()}
    assert find_cycle(graph) == []


def test_the_plugins_imports_have_no_cycle_between_its_parts():
    rooms = {}
    for name, targets in plugin_graph().items():
        rooms.setdefault(room(name), set()).update(room(t) for t in targets if room(t) != room(name))
    rooms = {name: {t for t in targets if t in rooms} for name, targets in rooms.items()}
    assert find_cycle(rooms) == []


def test_only_plugin_vsphere_imports_pyvmomi():
    speaking = sorted(module_name(p) for p in PLUGIN.rglob("*.py")
                      if any(m.split(".")[0] in ("pyVmomi", "pyVim") for m in imports(p)))
    assert [m for m in speaking if not m.startswith("plugin.vsphere")] == []


def test_the_checker_finds_a_cycle_and_pyvmomi():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
