"""The import rules of docs/architecture.md, checked on every test run.

- Layers read one way: portal > drills > incidents > backups > alerts > drportal (the core). A lower layer never
  imports a higher one, not even inside a function; it sends a signal or fills a registry instead.
- Services (``*.services``) never import ``tasks`` modules: ``tasks.py`` owns every enqueue.
- No import cycles between modules.

The first two are import-linter contracts in ``pyproject.toml`` (``lint-imports`` runs them by hand too); the
third is a strongly-connected-components search over grimp's import graph (the library import-linter builds
its graph with), since a contract can only name cycles between packages it is told about.
"""

from __future__ import annotations

from pathlib import Path

import grimp
from importlinter import api as _configures_import_linter  # noqa: F401  (registers its file readers and graph builder)
from importlinter.application import output, use_cases

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "pyproject.toml"


def _options():
    # create_report() is import-linter's API for a report as data; it expects what lint_imports() does first.
    use_cases._register_built_in_contract_types()
    options = use_cases.read_user_options(str(CONFIG))
    return options, list(options.session_options["root_packages"])


def _missing(packages: list[str]) -> list[str]:
    return [name for name in packages if not (ROOT / name / "__init__.py").is_file()]


def test_the_import_contracts_are_kept():
    """Every contract in pyproject.toml holds; a broken one fails with import-linter's own account of it."""
    options, packages = _options()
    missing = _missing(packages)
    # A root package or layer that does not exist would stop import-linter before it checks anything: say so, and
    # still check the rest (that layer made optional), so one run lists every broken rule.
    options.session_options["root_packages"] = [name for name in packages if name not in missing]
    for contract_options in options.contracts_options:
        if contract_options["type"] == "layers":
            layers = contract_options["layers"]
            contract_options["layers"] = [f"({name})" if name in missing else name for name in layers]
    report = use_cases.create_report(options, cache_dir=None)
    problems = [f"pyproject.toml names the package {name!r}, which does not exist" for name in missing]
    assert not report.could_not_run, f"import-linter could not run: {report.invalid_contract_options}"
    for contract, check in report.get_contracts_and_checks():
        if check.kept:
            continue
        with output.console.capture() as captured:
            contract.render_broken_contract(check)
        problems.append(f"BROKEN: {contract.name}\n{captured.get().rstrip()}")
    assert not problems, "\n\n".join(problems)


def strongly_connected_components(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is deep enough to hit Python's recursion limit)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = lowlink[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            module, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = lowlink[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    lowlink[module] = min(lowlink[module], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[module])
            if lowlink[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                components.append(sorted(component))
    return components


def describe_cycle(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One concrete cycle through the component, each import with its file line, then the component's members."""
    first = component[0]
    members = set(component)
    # Some module of the component that ``first`` imports, and the shortest way back from it to ``first``.
    second = min(m for m in graph.find_modules_directly_imported_by(first) if m in members)
    back = graph.find_shortest_chain(importer=second, imported=first) or (second, first)
    chain = [first, *back]
    lines = []
    for importer, imported in zip(chain, chain[1:], strict=False):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = f"  (line {details[0]['line_number']}: {details[0]['line_contents']})" if details else ""
        lines.append(f"    {importer} -> {imported}{where}")
    if len(component) > len(chain) - 1:
        lines.append(f"  all {len(component)} modules in it: {', '.join(component)}")
    return "cycle:\n" + "\n".join(lines)


def test_no_import_cycles_between_modules():
    """No module reaches itself through imports (direct or inside functions): every cycle is printed, with lines."""
    _, packages = _options()
    present = [name for name in packages if name not in _missing(packages)]
    graph = grimp.build_graph(*present, cache_dir=None)
    cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    cycles += [[m] for m in sorted(graph.modules) if graph.direct_import_exists(importer=m, imported=m)]
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(describe_cycle(graph, c) for c in cycles)
